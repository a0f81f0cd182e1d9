/**
 * The docs cannot drift from behaviour: every ```ts block in README.md and every TSDoc
 * `@example` in src/ runs here, and each output it claims is checked. A code line with a
 * trailing `// text` comment claims that `text` is printed (in order); a comment-only
 * line right after a `console.log` line continues that claim.
 */
import { expect } from 'chai';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { format } from 'node:util';
import { setLogger } from '../src/index.ts';
import { installCapturingLogger } from './support/logs.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const scratch = join(root, '.artifacts', 'doctest');

interface Snippet {
  readonly where: string;
  readonly code: string;
}

function readmeSnippets(): Snippet[] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const snippets: Snippet[] = [];
  for (const match of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const line = text.slice(0, match.index).split('\n').length;
    snippets.push({ where: `README.md:${line}`, code: match[1] as string });
  }
  return snippets;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function tsdocSnippets(): Snippet[] {
  const snippets: Snippet[] = [];
  for (const file of [...sourceFiles(join(root, 'src')), ...sourceFiles(join(root, 'machines'))]) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/@example\n((?:\s*\*.*\n)*?)\s*\*\/\n/g)) {
      const body = (match[1] as string)
        .split('\n')
        .map((l) => l.replace(/^\s*\* ?/, ''))
        .join('\n');
      const code = /```ts\n([\s\S]*?)```/.exec(body)?.[1];
      if (code === undefined) continue;
      const line = text.slice(0, match.index).split('\n').length;
      snippets.push({ where: `${relative(root, file)}:${line}`, code });
    }
  }
  return snippets;
}

function expectedOutput(code: string): string[] {
  const expected: string[] = [];
  let previousWasLog = false;
  for (const raw of code.split('\n')) {
    const line = raw.trim();
    const trailing = /^(?!\/\/)(.*?);?\s*\/\/ (.+)$/.exec(line);
    if (trailing) {
      expected.push((trailing[2] as string).trim());
      previousWasLog = false;
    } else if (line.startsWith('// ') && previousWasLog) {
      expected.push(line.slice(3).trim());
    } else {
      previousWasLog = line.includes('console.log(');
    }
  }
  return expected;
}

async function run(snippet: Snippet, index: number): Promise<string[]> {
  mkdirSync(scratch, { recursive: true });
  const file = join(scratch, `snippet-${index}.ts`);
  const entry = relative(scratch, join(root, 'src', 'index.ts')).replaceAll('\\', '/');
  const inspector = relative(scratch, join(root, 'src', 'inspect', 'index.ts')).replaceAll('\\', '/');
  const code = snippet.code.replaceAll(/from 'statesmith'/g, `from '${entry}'`).replaceAll(/from 'statesmith\/inspector'/g, `from '${inspector}'`);
  writeFileSync(file, `${code}\nexport {};\n`);
  const printed: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void printed.push(...format(...args).split('\n'));
  try {
    await import(pathToFileURL(file).href);
    await new Promise((resolve) => setTimeout(resolve, 30)); // let a timer-based example print
  } finally {
    console.log = original;
    setLogger(null);
    installCapturingLogger();
  }
  return printed;
}

describe('documentation examples', () => {
  after(() => rmSync(scratch, { recursive: true, force: true }));
  const snippets = [...readmeSnippets(), ...tsdocSnippets()];

  it('finds the README quickstart and examples on the public API', () => {
    expect(snippets.filter((s) => s.where.startsWith('README'))).to.have.length.greaterThan(0);
    expect(snippets.length).to.be.greaterThan(8);
  });

  snippets.forEach((snippet, index) => {
    it(`runs the example at ${snippet.where} and prints what it claims`, async () => {
      const printed = await run(snippet, index);
      let cursor = 0;
      for (const want of expectedOutput(snippet.code)) {
        const found = printed.findIndex((line, i) => i >= cursor && line.trim() === want);
        expect(found, `expected output line ${JSON.stringify(want)} in:\n${printed.join('\n')}`).to.be.greaterThan(-1);
        cursor = found + 1;
      }
    });
  });
});

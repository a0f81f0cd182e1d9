/**
 * Guard-rails that run with every `npm test`: no import cycle in the library's code, and
 * a tree Prettier has formatted. Each check is also shown to fail on what it must catch.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import madge from 'madge';

const run = promisify(execFile);

/**
 * The cycles among `roots`. Type-only imports are left out: TypeScript erases them, so they
 * cannot make one module load before another (an `import { type X }` still loads, and counts).
 */
async function cycles(roots: string[], baseDir = process.cwd()): Promise<string[][]> {
  const result = await madge(roots, {
    baseDir,
    fileExtensions: ['ts'],
    detectiveOptions: { ts: { skipTypeImports: true }, es6: { skipTypeImports: true } },
  });
  return result.circular();
}

describe('guard-rails', function () {
  this.timeout(60_000);

  it('src/ and machines/ have no import cycle', async () => {
    expect(await cycles(['src', 'machines'])).to.deep.equal([]);
  });

  it('the cycle check sees a value cycle, and not a type-only one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'statesmith-cycles-'));
    try {
      await writeFile(join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = () => b;\n");
      await writeFile(join(dir, 'b.ts'), "import { a } from './a.ts';\nexport const b = () => a;\n");
      await writeFile(join(dir, 'c.ts'), "import type { D } from './d.ts';\nexport interface C { d?: D }\n");
      await writeFile(join(dir, 'd.ts'), "import type { C } from './c.ts';\nexport interface D { c?: C }\n");
      expect(await cycles([dir], dir)).to.deep.equal([['a.ts', 'b.ts']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the tree is formatted with Prettier (npx prettier --write . fixes it)', async () => {
    const prettier = join('node_modules', '.bin', 'prettier');
    const { stdout } = await run(prettier, ['--list-different', 'src', 'machines', 'test', 'bench', 'examples', 'scripts', 'inspector']).catch(
      (error: { stdout?: string; code?: number }) => {
        // Exit 1: some files differ (listed on stdout); anything else is Prettier failing.
        if (error.code === 1) return { stdout: error.stdout ?? '' };
        throw error;
      },
    );
    expect(stdout.split('\n').filter(Boolean), 'files Prettier would change').to.deep.equal([]);
  });
});

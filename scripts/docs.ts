/**
 * `npm run docs`: the API reference, as Markdown in `docs/api/` (one folder per entry point:
 * `statesmith`, then `inspector/`, `telemetry/` and `nats/`), made from API Extractor's doc
 * models by API Documenter. It ships in the package, and `test/docs-reference.test.ts` checks
 * that the committed copy is what the code makes.
 *
 *   node --import tsx scripts/docs.ts [--out dir] [--no-build]
 *
 * `--out` writes elsewhere (the test's check); `--no-build` uses the `dist/` there is.
 */
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt === -1 ? join(root, 'docs', 'api') : (args[outAt + 1] as string);
if (outAt !== -1 && (out === undefined || out.startsWith('--'))) throw new Error('--out needs a directory');

/** Each entry point: its API Extractor config, its import path, and its folder under the output. */
const entries = [
  { config: 'api-extractor.json', entry: 'statesmith', folder: '' },
  { config: 'api-extractor.inspector.json', entry: 'statesmith/inspector', folder: 'inspector' },
  { config: 'api-extractor.telemetry.json', entry: 'statesmith/telemetry', folder: 'telemetry' },
  { config: 'api-extractor.nats.json', entry: 'statesmith/nats', folder: 'nats' },
] as const;

if (!args.includes('--no-build')) execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });

const work = mkdtempSync(join(tmpdir(), 'statesmith-docs-'));
try {
  rmSync(out, { recursive: true, force: true });
  for (const { config, entry, folder } of entries) {
    const prepared = ExtractorConfig.loadFileAndPrepare(join(root, config));
    // The model only: the API report is the api test's business (npm run api:update writes it).
    const result = Extractor.invoke(prepared, { localBuild: true, messageCallback: (message) => void (message.handled = true) });
    if (!result.succeeded && result.errorCount > 0) throw new Error(`API Extractor failed for ${entry}: ${result.errorCount} errors`);
    const model = join(work, folder || 'main');
    mkdirSync(model, { recursive: true });
    cpSync(prepared.apiJsonFilePath, join(model, 'model.api.json'));
    const target = join(out, folder);
    execFileSync(join(root, 'node_modules', '.bin', 'api-documenter'), ['markdown', '-i', model, '-o', target], { cwd: root, stdio: 'ignore' });
    // API Documenter writes CRLF and names every page after the package: LF, and a sub-entry's pages say which entry they are.
    for (const file of readdirSync(target, { withFileTypes: true })) {
      if (!file.isFile()) continue;
      const path = join(target, file.name);
      let text = readFileSync(path, 'utf8').replaceAll('\r\n', '\n');
      if (folder !== '') {
        text = text.replaceAll('[statesmith](./statesmith.md)', `[${entry}](./statesmith.md)`).replace(/^## statesmith package$/m, `## ${entry} entry point`);
      }
      writeFileSync(path, text);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`the API reference is in ${out}`);

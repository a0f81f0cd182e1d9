/**
 * The API reference in `docs/api/` ships in the package: it must be what the code makes.
 * `npm run docs` writes it; this makes it again elsewhere and compares, file by file.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe('the API reference (docs/api)', function () {
  this.timeout(180_000);

  it('is what npm run docs makes from the code, with a short page per logic and a title per entry point', async () => {
    const out = await mkdtemp(join(tmpdir(), 'statesmith-docs-check-'));
    try {
      await run(process.execPath, ['--import', 'tsx', 'scripts/docs.ts', '--out', out], { cwd: root, maxBuffer: 1 << 24 });
      const made = await filesUnder(out);
      const committed = await filesUnder(join(root, 'docs', 'api'));
      const missing = made.filter((file) => !committed.includes(file));
      const extra = committed.filter((file) => !made.includes(file));
      const changed: string[] = [];
      for (const file of made.filter((f) => committed.includes(f))) {
        if ((await readFile(join(out, file), 'utf8')) !== (await readFile(join(root, 'docs', 'api', file), 'utf8'))) changed.push(file);
      }
      expect({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), changed: changed.slice(0, 5) }, 'docs/api is stale: run npm run docs').to.deep.equal({
        missing: [],
        extra: [],
        changed: [],
      });
      // A logic's page is its short signature and its description, not XState's inferred type.
      for (const page of ['statesmith.executorlogic.md', 'statesmith.taskgrouplogic.md', 'statesmith.coordinatorlogic.md']) {
        const text = await readFile(join(out, page), 'utf8');
        expect(text.split('\n').length, page).to.be.below(60);
        expect(text).to.not.include('import("xstate")');
      }
      expect(await readFile(join(out, 'inspector', 'statesmith.md'), 'utf8')).to.match(
        /## statesmith\/inspector entry point\n\n`statesmith\/inspector`(<!-- -->)?: the offline, live web view/,
      );
      expect(await readFile(join(out, 'nats', 'statesmith.md'), 'utf8')).to.include('## statesmith/nats entry point');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

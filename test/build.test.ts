/** What the built package ships: source maps that carry their sources, so a consumer's stack traces point at real text. */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function mapsUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? mapsUnder(join(dir, entry.name)) : entry.name.endsWith('.js.map') ? [join(dir, entry.name)] : [],
  );
}

describe('the built package', () => {
  it('ships source maps with sourcesContent for every module', function () {
    if (!existsSync('dist/src')) {
      if (process.env['CI'] === 'true') throw new Error('dist/ is missing: .ci/run builds before it tests');
      this.skip(); // outside CI only: nothing is built yet (npm run build writes dist/)
    }
    const maps = mapsUnder('dist');
    expect(maps.length).to.be.greaterThan(50);
    const without = maps.filter((file) => {
      const map = JSON.parse(readFileSync(file, 'utf8')) as { sources?: string[]; sourcesContent?: Array<string | null> };
      return (
        !Array.isArray(map.sourcesContent) ||
        map.sourcesContent.length !== (map.sources ?? []).length ||
        map.sourcesContent.some((text) => typeof text !== 'string' || text.length === 0)
      );
    });
    expect(without).to.deep.equal([]);
  });
});

/** The snapshot store contract, on `sqlite://` (a temp file) and `postgresql://` (the test server). */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { DurableError, openStore, type SnapshotStore } from '../../src/index.ts';
import { rejection } from '../support/async.ts';
import { sharedPostgres, sqliteUrl } from '../support/servers.ts';

for (const backend of [
  { kind: 'sqlite', url: async () => sqliteUrl('store-contract.db') },
  { kind: 'postgresql', url: sharedPostgres },
] as const) {
  describe(`snapshot store: ${backend.kind}`, function () {
    this.timeout(20_000);
    let store: SnapshotStore;
    let id: string;

    before(async function () {
      const url = await backend.url();
      if (url === undefined) this.skip(); // no server and none could be started: outside CI only (under CI=true the harness throws)
      store = await openStore(url);
    });
    after(async () => store?.close());
    beforeEach(() => (id = `actor-${randomBytes(4).toString('hex')}`));

    it('loads null for an id never saved, and what was saved, with its version, fence and time', async () => {
      expect(await store.load(id)).to.equal(null);
      const before = Date.now();
      expect(await store.save(id, { snapshot: { value: 'idle', context: { n: 1, big: 12n } }, version: 'v1', fence: 7n })).to.equal(true);
      const loaded = await store.load(id);
      expect(loaded?.snapshot).to.deep.equal({ value: 'idle', context: { n: 1, big: 12n } });
      expect(loaded?.version).to.equal('v1');
      expect(loaded?.fence).to.equal(7n);
      expect(loaded?.savedAt).to.be.within(before - 1_000, Date.now() + 1_000);
      expect(await store.list()).to.include(id);
    });

    it('writes nothing and says false under a smaller fence; an equal or larger fence writes', async () => {
      await store.save(id, { snapshot: { n: 1 }, version: 1, fence: 5n });
      expect(await store.save(id, { snapshot: { n: 2 }, version: 1, fence: 4n }), 'a smaller fence').to.equal(false);
      expect(await store.save(id, { snapshot: { n: 3 }, version: 1 }), 'no fence, after a fenced save').to.equal(false);
      expect((await store.load(id))?.snapshot).to.deep.equal({ n: 1 });
      expect(await store.save(id, { snapshot: { n: 4 }, version: 1, fence: 5n }), 'the same fence').to.equal(true);
      expect(await store.save(id, { snapshot: { n: 5 }, version: 2, fence: 6n }), 'a larger fence').to.equal(true);
      const loaded = await store.load(id);
      expect([loaded?.snapshot, loaded?.version, loaded?.fence]).to.deep.equal([{ n: 5 }, 2, 6n]);
    });

    it('saves without a fence as often as asked while none was ever given', async () => {
      expect(await store.save(id, { snapshot: { n: 1 }, version: 1 })).to.equal(true);
      expect(await store.save(id, { snapshot: { n: 2 }, version: 1 })).to.equal(true);
      expect((await store.load(id))?.fence).to.equal(undefined);
    });

    it('deletes, and refuses a snapshot that is not JSON, a bad id and an unknown record key with typed errors', async () => {
      await store.save(id, { snapshot: 1, version: 1 });
      expect(await store.delete(id)).to.equal(true);
      expect(await store.delete(id)).to.equal(false);
      const cyclic: Record<string, unknown> = {};
      cyclic['self'] = cyclic;
      const notJson = (await rejection(store.save(id, { snapshot: cyclic, version: 1 }))) as DurableError;
      expect(notJson.code).to.equal('ERR_SNAPSHOT_JSON');
      expect(notJson.message).to.include(JSON.stringify(id));
      expect(((await rejection(store.load(''))) as DurableError).code).to.equal('ERR_STORE');
      expect(((await rejection(store.save(id, { snapshot: 1, version: 1, fence: 1 as never }))) as DurableError).message).to.match(/record.fence is a bigint/);
      expect(((await rejection(store.save(id, { snapshot: 1, version: 1, extra: 1 } as never))) as { code: string }).code).to.equal('ERR_UNKNOWN_OPTION');
    });
  });
}

describe('openStore', () => {
  it('refuses a URL it cannot open with ERR_STORE_URL, saying what it takes', async () => {
    for (const bad of ['nope', 'redis://127.0.0.1:6379', 'sqlite://relative/state.db']) {
      const error = (await rejection(openStore(bad))) as DurableError;
      expect(error.code, bad).to.equal('ERR_STORE_URL');
      expect(error.message).to.match(/sqlite:\/\/\/.*state\.db/);
    }
  });

  it('a directory that does not exist is ERR_STORE, naming the file', async () => {
    const error = (await rejection(openStore('sqlite:///nonexistent-statesmith-dir/state.db'))) as DurableError;
    expect(error.code).to.equal('ERR_STORE');
    expect(error.message).to.include('/nonexistent-statesmith-dir/state.db');
  });
});

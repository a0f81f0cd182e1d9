import { expect } from 'chai';
import { runExample } from '../support/examples.ts';
import { sharedRedis } from '../support/servers.ts';

describe('examples/redis-lock.ts', function () {
  this.timeout(60_000);

  it('two processes share the volume locks over Redis: no overlapping deletes, growing fences', async function () {
    const url = await sharedRedis();
    if (url === undefined) this.skip(); // no Redis and none could be started: outside CI only (under CI=true the harness throws)
    process.env['REDIS_URL'] = url;
    const { code, out } = await runExample('examples/redis-lock.ts', 50_000);
    expect(code, out).to.equal(0);
    expect(out.match(/deletes volume-7 start/g)).to.have.length(4);
    expect(out.match(/deletes volume-8 done/g)).to.have.length(4);
    expect(out).to.match(/no overlapping deletes; fences grew with every grant/);
  });
});

import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/shared-lock.ts', function () {
  this.timeout(30_000);

  it('shares a lock and an event between a worker and the main thread, and re-raises a worker error', async () => {
    const { code, out } = await runExample('examples/shared-lock.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.include('scrubbed: true, table: [10, 10, 10, 10] (5 passes each from 2 threads), lock free: true');
    expect(out).to.include('main event loop beat throughout the wait');
    expect(out).to.include('log: exception in worker broken-scrubber');
    expect(out).to.include('join() re-raised Error: volume table is corrupt (code E_CORRUPT, volume 3)');
  });
});

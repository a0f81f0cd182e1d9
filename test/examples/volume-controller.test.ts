import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/volume-controller.ts', function () {
  this.timeout(30_000);

  it('drives an executor and a task group from a user machine by commands alone, and stops cleanly', async () => {
    const { code, out } = await runExample('examples/volume-controller.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.match(/executor\s+refused another delete: the slot holds delete/);
    expect(out).to.match(/executor\s+delete completed: vol-2 deleted/);
    expect(out).to.match(/executor\s+delete completed: vol-4 deleted/);
    expect(out).to.match(/group\s+scrub-vol-3 failed: checksum mismatch in block 7/);
    expect(out).to.match(/group\s+scrub-vol-1 completed: 10 blocks/);
    expect(out).to.match(/group\s+poller cancelled/);
    expect(out).to.match(/group\s+stopped; failures nobody acknowledged: scrub-vol-3: checksum mismatch in block 7/);
    expect(out.trim().split('\n').at(-1)).to.match(/controller\s+stopped/);
    // One delete at a time: vol-4 starts only after vol-2 is done.
    expect(out.indexOf('vol-2 deleted')).to.be.lessThan(out.lastIndexOf('started delete'));
  });
});

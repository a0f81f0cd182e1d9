import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/deadlock.ts', function () {
  this.timeout(30_000);

  it('breaks the two-lock deadlock: the cleanup runs under the lock and both jobs learn why they lost theirs', async () => {
    const { code, out } = await runExample('examples/deadlock.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.match(/watchdog\s+disks: held, 1 waiting; volumes: held, 1 waiting: deadlock/);
    expect(out).to.match(/cleanup\s+runs holding disks \(owner: task hosted by watchdog under disks\)/);
    expect(out).to.match(/cleanup\s+forced volumes: ForceResult.SUCCESS/);
    expect(out).to.match(/resize\s+ended with ERR_LOCK_LOST: disks was taken away by watchdog: deadlock: resize waits/);
    expect(out).to.match(/snapshot\s+ended with ERR_LOCK_LOST: volumes was taken away by watchdog: deadlock/);
    expect(out).to.match(/disks locked: false, volumes locked: false/);
  });
});

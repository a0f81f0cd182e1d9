import { getEventListeners } from 'node:events';
import { expect } from 'chai';
import { ManualClock } from '../../src/index.ts';
import { sleep } from '../../src/runtime/sleep.ts';

describe("sleep (the demo services' pause)", () => {
  it('leaves no abort listener behind on a long-lived signal, however often it sleeps', async () => {
    const clock = new ManualClock();
    const service = new AbortController();
    for (let i = 0; i < 50; i++) {
      const pause = sleep(1_500, service.signal, clock);
      await clock.advance(1_500);
      await pause;
    }
    expect(getEventListeners(service.signal, 'abort')).to.have.length(0);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('ends at once on abort, clearing its timer', async () => {
    const clock = new ManualClock();
    const service = new AbortController();
    const pause = sleep(60_000, service.signal, clock);
    service.abort();
    await pause;
    expect(clock.pendingTimers).to.equal(0);
    await sleep(10, service.signal, clock); // an aborted signal: resolves at once
  });
});

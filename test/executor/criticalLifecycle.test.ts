/** The executor's critical task walks the shared lifecycle with the task it guards. */
import { expect } from 'chai';
import { AsyncExecutor, WakeupBus } from '../../src/index.ts';
import { gate, settle } from '../support/async.ts';

describe('AsyncExecutor.criticalTask on the shared lifecycle', () => {
  it('walks scheduled → running with its task, cancelling when a cancel meets it, done.cancelled when the task ends, then idle', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'crit' });
    const critical = executor.criticalTask;
    const values: string[] = [];
    critical.actor.subscribe((s) => values.push(JSON.stringify(s.value)));
    const release = gate();
    const run = executor.run(async () => {
      await release.promise;
      // The worker checks the flag under the lock and skips its step.
      return critical.withLock(() => (critical.isCancelled ? 'skipped' : 'taken'));
    });
    await settle();
    expect(critical.actor.getSnapshot().value).to.equal('running');
    expect(await critical.withLock(() => critical.cancel())).to.equal(true);
    expect(critical.actor.getSnapshot().value).to.equal('cancelling');
    release.open();
    expect(await run).to.equal('skipped');
    await settle();
    expect(values).to.include.members(['"scheduled"', '"running"', '"cancelling"', '{"done":"cancelled"}']);
    expect(values.indexOf('"running"')).to.be.lessThan(values.indexOf('"cancelling"'));
    expect(critical.actor.getSnapshot().value).to.equal('idle');
  });
});

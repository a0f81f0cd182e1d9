/**
 * The capture stream forwarded to a real Stately inspector (`@statelyai/inspect`'s
 * `createInspector`, with an adapter that keeps what it would send): actors, events and
 * snapshots, what existed before first.
 */
import { expect } from 'chai';
import { createInspector } from '@statelyai/inspect';
import { AsyncExecutor, WakeupBus } from '../../src/index.ts';
import { inspection } from '../../src/inspect/capture.ts';
import { forwardToStately } from '../../src/inspect/index.ts';

type Sent = { readonly type: string; readonly sessionId: string; readonly [key: string]: unknown };

describe('forwardToStately', () => {
  afterEach(() => inspection.reset());

  it("sends Stately's records: the actors that were there, then each event and snapshot as it happens; stop ends it", async () => {
    inspection.reset();
    const before = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'there-before' });
    const sent: Sent[] = [];
    const stately = createInspector({ send: (record) => void sent.push(record as unknown as Sent) });
    const stop = forwardToStately(stately);
    // What existed is sent first, with its state.
    const registered = sent.filter((r) => r.type === '@xstate.actor').map((r) => r.sessionId);
    expect(registered).to.include(before.actor.sessionId);

    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'forwarded' });
    expect(await executor.run(async () => 'ok')).to.equal('ok');
    const mine = sent.filter((r) => r.sessionId === executor.actor.sessionId);
    expect(mine.map((r) => r.type)).to.include.members(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
    const events = mine.filter((r) => r.type === '@xstate.event').map((r) => (r['event'] as { type: string }).type);
    expect(events).to.include.members(['statesmith.executor.run', 'statesmith.executor.settled']);
    const last = mine.filter((r) => r.type === '@xstate.snapshot').at(-1) as unknown as { snapshot: { value: unknown; status: string } };
    expect(last.snapshot.status).to.equal('active');
    expect(['idle', 'done']).to.include(last.snapshot.value);
    // Every record is Stately's: an id, a time and a version.
    for (const record of sent) expect(record).to.include.keys('id', 'createdAt', '_version', 'sessionId');

    stop();
    stop(); // once
    const count = sent.length;
    await executor.run(async () => 'again');
    expect(sent.length, 'nothing after stop').to.equal(count);
    expect(inspection.enabled, 'capture off again').to.equal(false);
  });

  it('refuses what is not an inspector, and an unknown option, and leaves capture as it was', () => {
    const capturing = inspection.enabled;
    expect(() => forwardToStately({} as never))
      .to.throw(TypeError)
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    const stately = createInspector({ send: () => undefined });
    expect(() => forwardToStately(stately, { replay: true } as never))
      .to.throw(TypeError)
      .with.property('code', 'ERR_UNKNOWN_OPTION');
    expect(inspection.enabled).to.equal(capturing);
  });
});

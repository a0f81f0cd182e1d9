/**
 * An HA-style control loop on statesmith's executor slice (`node --import tsx examples/ha-loop.ts`; `npm start` runs examples/ha-agent.ts).
 *
 * The loop runs a cycle every 2 s on a wake-up bus, holding the executor lock. The first
 * cycle schedules a `restart` action that runs a real subprocess; when it finishes, the
 * executor wakes the loop early. The next cycle schedules a long `basebackup`, which a
 * REST-style handler cancels a moment later: SIGTERM, then the process tree is gone.
 * Every state change of the executor and the subprocess runner is printed as a timeline.
 * The program exits by itself, or cleanly on Ctrl-C.
 */
import { AsyncExecutor, CancellableSubprocess, HaLoop, setLogger, WakeupBus, type LogFields } from 'statesmith';

const t0 = performance.now();
const stamp = (): string => `+${String(Math.round(performance.now() - t0)).padStart(5)} ms`;
const line = (who: string, what: string): void => console.log(`${stamp()}  ${who.padEnd(10)} ${what}`);

// Route the framework's log lines into the timeline.
const log = (level: string) => (message: string, fields?: LogFields) =>
  line('log', `${level}: ${message}${fields?.['error'] instanceof Error ? ` (${fields['error'].message})` : ''}`);
setLogger({ debug: () => undefined, info: log('info'), warn: log('warn'), error: log('error') });

const bus = new WakeupBus();
const postgres = new CancellableSubprocess({ name: 'postgres', terminateTimeoutMs: 3_000 });
const executor = new AsyncExecutor({ wakeup: bus, cancellable: postgres, name: 'ha' });

// The timeline: every state the two actors enter (snapshots that only change context are skipped).
const describe = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));
const onStateChange = <S extends { value: unknown }>(print: (snapshot: S) => void) => {
  let last = '';
  return (snapshot: S): void => {
    const now = describe(snapshot.value);
    if (now !== last) print(snapshot);
    last = now;
  };
};
executor.actor.subscribe(
  onStateChange<ReturnType<typeof executor.actor.getSnapshot>>((s) => {
    const slot = s.context.action ?? s.context.lastAction;
    const detail = s.matches('idle') ? '' : ` (${slot}${s.matches('done') ? ` → ${s.context.outcome}` : ''})`;
    line('executor', `${describe(s.value)}${detail}`);
  }),
);
postgres.actor.subscribe(
  onStateChange<ReturnType<typeof postgres.actor.getSnapshot>>((s) => {
    const { pid, exitCode, signal } = s.context;
    const detail = s.matches('running') ? ` pid ${pid}` : s.matches('done') ? ` exit ${exitCode ?? signal}` : '';
    line('process', `${describe(s.value)}${detail}`);
  }),
);
bus.wakeups$.subscribe((w) => line('bus', `wake-up: ${w.reason}`));

let finish!: (why: string) => void;
const finished = new Promise<string>((resolve) => (finish = resolve));
process.once('SIGINT', () => {
  line('main', 'Ctrl-C: stopping');
  finish('interrupted');
});

const output = (name: string) => (text: string) => line(name, `| ${text}`);
let phase: 'restart' | 'basebackup' | 'finished' = 'restart';

async function cycle({ cycle }: { cycle: number }): Promise<void> {
  line('loop', `cycle ${cycle}: busy=${executor.busy}${executor.busy ? ` (${executor.scheduledAction} in progress)` : ''}`);
  if (executor.busy) return;
  if (phase === 'restart') {
    phase = 'basebackup';
    executor.tryRunAsync('restart', () =>
      postgres.call(['sh', '-c', 'echo stopping postgres; sleep 0.4; echo starting postgres; sleep 0.4; echo ready'], {
        onOutput: output('restart'),
      }),
    );
  } else if (phase === 'basebackup') {
    phase = 'finished';
    executor.tryRunAsync('basebackup', () => postgres.call(['sh', '-c', 'echo copying 40 GB; sleep 30; echo copied'], { onOutput: output('backup') }));
    // A REST handler (outside the cycle, so outside the executor lock) cancels it soon after.
    setTimeout(() => {
      line('rest', 'POST /reinitialize?force: cancelling the basebackup');
      void executor.cancel().then(() => {
        line('rest', `cancel returned; busy=${executor.busy}`);
        finish('demo finished');
      });
    }, 800);
  }
}

// The loop is a service: start() runs it, stop() ends it and reports what failed.
const loop = new HaLoop({ bus, intervalMs: 2_000, executor, cycle, uniqueId: 'ha' }).start();
const why = await finished;
await loop.stop();
await executor.cancel();
line('main', `loop stopped: ${why}`);
bus.complete();

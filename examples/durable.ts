/**
 * Durable actors: a pump controller whose state survives its process.
 *
 * Run it twice with the same state file: the second run comes back where the first was
 * killed, with its cool-down timer still due at its first deadline.
 *
 *   node --conditions=statesmith-source --import tsx examples/durable.ts /tmp/pump.db start   # starts, then is killed mid-cool-down
 *   node --conditions=statesmith-source --import tsx examples/durable.ts /tmp/pump.db         # comes back cooling down
 *
 * With no path it uses a file under the OS temp dir and runs both halves itself, the first
 * in a child process that it SIGKILLs.
 */
import { fork } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assign, createActor, setup } from 'xstate';
import { durable, openStore, type DurableSnapshot } from 'statesmith';

const pump = setup({
  types: { context: {} as { runs: number }, events: {} as { type: 'start' } | { type: 'stop' } },
  delays: { coolDown: 1_500 },
}).createMachine({
  id: 'pump',
  context: { runs: 0 },
  initial: 'idle',
  states: {
    idle: { on: { start: { target: 'running', actions: assign({ runs: ({ context }) => context.runs + 1 }) } } },
    running: { on: { stop: 'coolingDown' } },
    coolingDown: { after: { coolDown: 'idle' } },
  },
});

const [path, command] = process.argv.slice(2);

async function run(file: string, action: string | undefined): Promise<void> {
  const store = await openStore(`sqlite://${file}`);
  const actor = createActor(durable(pump, { store, id: 'pump-1', version: 1 }));
  const inner = (): { value: unknown; context: { runs: number } } => (actor.getSnapshot() as DurableSnapshot).inner as never;
  actor.subscribe((snapshot) => {
    const state = snapshot as DurableSnapshot;
    if (state.value === 'running') console.log(`pump ${JSON.stringify(inner().value)} (runs: ${inner().context.runs})`);
  });
  actor.start();
  await new Promise<void>((resolve) => {
    const check = actor.subscribe((snapshot) => {
      if ((snapshot as DurableSnapshot).value === 'running') {
        check.unsubscribe();
        resolve();
      }
    });
  });
  const { restored, restoredFrom, timersRestored } = actor.getSnapshot().context;
  console.log(restored ? `restored the snapshot saved at ${new Date(restoredFrom!).toISOString()}, ${timersRestored} timer(s) re-armed` : 'started fresh');
  if (action === 'start') {
    actor.send({ type: 'start' });
    actor.send({ type: 'stop' });
    // Saved within a turn; then this process is killed in the middle of the cool-down.
    await new Promise((resolve) => setTimeout(resolve, 100));
    console.log('killed mid-cool-down');
    process.kill(process.pid, 'SIGKILL');
  }
  await new Promise<void>((resolve) => {
    const done = actor.subscribe(() => {
      if (inner().value === 'idle') {
        done.unsubscribe();
        resolve();
      }
    });
    if (inner().value === 'idle') resolve();
  });
  actor.stop();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await store.close();
}

if (path !== undefined) {
  await run(path, command);
} else {
  const file = join(mkdtempSync(join(tmpdir(), 'statesmith-durable-')), 'pump.db');
  console.log(`state file: ${file}`);
  const first = fork(fileURLToPath(import.meta.url), [file, 'start'], { stdio: 'inherit' });
  await new Promise((resolve) => first.once('exit', resolve));
  await run(file, undefined);
  console.log('cool-down finished after the restart');
}

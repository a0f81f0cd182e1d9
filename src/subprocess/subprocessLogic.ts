/**
 * `subprocessLogic`: the subprocess machine with the child that does the I/O, as actor
 * logic that `createActor`, `spawn` and `invoke` accept. The machine holds the state and
 * the time limits; the `process` child spawns the command, streams its output, and
 * stops its process tree when asked.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { telemetry } from '../telemetry/hooks.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { fromCallback } from 'xstate';
import { errorData } from '../../machines/protocol.ts';
import {
  kFromProcess,
  subprocessMachine,
  type SubprocessCallData,
  type SubprocessInternalEvent,
  type SubprocessProcessCommand,
  type SubprocessProcessInput,
} from '../../machines/subprocess.machine.ts';
import { systemClock } from '../clock.ts';
import { getLogger } from '../logger.ts';
import { createDeferred } from '../runtime/deferred.ts';
import { isAlive, listDescendants, listMarked, OWNER_MARKER, RUN_MARKER, sendSignal } from './processTree.ts';
import { persistWith, ownerTokenOf } from '../runtime/persistence.ts';
import { subprocessPersistence } from './subprocessPersistence.ts';

/** Which pipe a line came from. */
export type OutputStream = 'stdout' | 'stderr';

const providedSubprocess = guardedLogic(
  subprocessMachine.provide({
    actors: {
      process: fromCallback<SubprocessProcessCommand, SubprocessProcessInput>(({ input, sendBack, receive, self }) => {
        const { name, call, options } = input;
        const command = options.argv.join(' ');
        const span = telemetry.enabled ? telemetry.sink.subprocessCall(name, options.argv[0] as string) : undefined;
        let stopped = false;
        const end = (event: Omit<Extract<SubprocessInternalEvent, { type: 'statesmith.subprocess.ended' }>, 'type' | typeof kFromProcess | 'call'>): void => {
          if (span !== undefined) {
            if (event.exitCode !== null) span.setAttribute('statesmith.subprocess.exit_code', event.exitCode);
            span.end(event.error !== undefined ? 'failed' : stopped ? 'cancelled' : 'completed', event.error);
          }
          sendBack({ type: 'statesmith.subprocess.ended', [kFromProcess]: true, call, ...event });
        };
        const spawnFailed = (error: unknown): void => {
          getLogger().error(`${name}: failed to spawn '${command}'`, { error });
          end({ exitCode: null, signal: null, error: errorData(error) });
        };
        const runId = `${process.pid}.${randomBytes(8).toString('hex')}`;
        // Under a durable actor: its token, so that its next incarnation can find this tree if this process dies.
        const owner = ownerTokenOf(self);
        const streaming = options.onOutput !== undefined;
        let child: ChildProcess;
        try {
          child = spawn(options.argv[0] as string, options.argv.slice(1), {
            cwd: options.cwd,
            env: { ...(options.env ?? process.env), [RUN_MARKER]: runId, ...(owner === undefined ? {} : { [OWNER_MARKER]: owner }) },
            detached: true,
            stdio: [options.input !== undefined ? 'pipe' : 'ignore', streaming ? 'pipe' : 'ignore', streaming ? 'pipe' : 'ignore'],
          });
        } catch (error) {
          spawnFailed(error);
          return undefined;
        }
        const pid = child.pid;
        if (pid === undefined) {
          child.once('error', spawnFailed);
          return undefined;
        }
        child.on('error', () => undefined);
        const tree = new ProcessTree(pid, runId);
        const exited = createDeferred<void>();
        let exitCode: number | null = null;
        let exitSignal: NodeJS.Signals | null = null;
        let stopping = false;
        let over = false;
        child.once('exit', (code, sig) => {
          exitCode = code;
          exitSignal = sig;
          exited.resolve();
        });
        sendBack({ type: 'statesmith.subprocess.spawned', [kFromProcess]: true, call, pid });
        const closed = streaming ? streamLines(name, child, options.onOutput as NonNullable<SubprocessCallData['onOutput']>) : [];
        if (options.input !== undefined && child.stdin) {
          // A child that exits without reading its input makes the write fail with EPIPE: not our error.
          child.stdin.on('error', () => undefined);
          child.stdin.end(withNewline(options.input));
        }
        void (async () => {
          await exited.promise;
          await drain(child, closed, input.pipeGraceMs);
          // Stopped: whatever the leader left behind in its group, its tree or marked with its
          // run id (a daemon that left both) goes too, and the call ends once it is gone.
          if (stopping) {
            tree.collect();
            tree.kill();
            await tree.waitForDeath(name);
          }
          over = true;
          end({ exitCode: toExitCode(exitCode, exitSignal), signal: exitSignal });
        })();
        receive((request) => {
          if (exited.settled && request.type === 'terminate') return;
          stopping = true;
          stopped = true;
          if (request.type === 'terminate') {
            getLogger().info(`Terminating ${command}`, { subprocess: name, pid });
            tree.collect();
            sendSignal(pid, 'SIGTERM');
            if (telemetry.enabled) telemetry.sink.subprocessKill('SIGTERM');
          } else if (!exited.settled) {
            getLogger().warn(`Killing ${command} and its descendants`, { subprocess: name, pid });
            if (telemetry.enabled) telemetry.sink.subprocessKill('SIGKILL');
            // Freeze the leader so it cannot fork while its tree is collected, then kill it all.
            sendSignal(pid, 'SIGSTOP');
            tree.collect();
            tree.kill();
          }
        });
        return () => {
          // The runner stopped (its parent stopped it) while the process ran: nothing may outlive it.
          if (over) return;
          tree.collect();
          tree.kill();
          child.stdout?.destroy();
          child.stderr?.destroy();
        };
      }),
    },
  }),
  'subprocess',
);

/** The machine type XState infers for subprocessLogic (long: every action and child spelled out). */
type ProvidedSubprocess = typeof providedSubprocess;

/**
 * The type of {@link subprocessLogic}: XState logic for the subprocess runner: its commands call a
 * process, cancel it and re-arm the runner. `createActor`, `spawn` and `invoke` take it; its
 * commands, replies, input and context are typed as the README's table of its commands says.
 */
export interface SubprocessLogic extends ProvidedSubprocess {}

/**
 * The subprocess runner as actor logic: spawn it in your machine, send it `call`
 * commands, and hear `started` and `exited` (see the README's table of subprocess
 * commands). Its time limits are delayed transitions, so a `SimulatedClock` drives them.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { subprocessLogic } from 'statesmith';
 * const runner = createActor(subprocessLogic, { input: { name: 'demo' } }).start();
 * const exited = new Promise<{ outcome: string; exitCode: number | null }>((resolve) => runner.on('statesmith.subprocess.exited', resolve));
 * runner.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'exit 3'] });
 * const { outcome, exitCode } = await exited;
 * console.log(outcome, exitCode); // completed 3
 * ```
 */
export const subprocessLogic: SubprocessLogic = providedSubprocess;

// How durable() saves and restores a runner: its last call as data; a call cut short is never run again.
persistWith(subprocessLogic, subprocessPersistence(subprocessLogic as never));

/** A call's processes: the leader's group, its `/proc` tree, and whatever carries its run id. */
class ProcessTree {
  readonly #pid: number;
  readonly #runId: string;
  readonly #descendants = new Set<number>();

  constructor(pid: number, runId: string) {
    this.#pid = pid;
    this.#runId = runId;
  }

  collect(): void {
    for (const pid of listDescendants(this.#pid)) this.#descendants.add(pid);
    for (const pid of listMarked(this.#runId)) this.#descendants.add(pid);
  }

  kill(): void {
    sendSignal(-this.#pid, 'SIGKILL');
    for (const pid of this.#descendants) sendSignal(pid, 'SIGKILL');
  }

  /** Waits (bounded, 2 s) until every killed descendant is dead, so a cancel means "gone". */
  async waitForDeath(name: string): Promise<void> {
    for (let waited = 0; waited < 2_000; waited += 10) {
      if (![...this.#descendants].some(isAlive)) return;
      await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 10));
    }
    getLogger().warn(`${name}: descendants still alive after SIGKILL`, { pids: [...this.#descendants].filter(isAlive) });
  }
}

function withNewline(input: string | Uint8Array): string | Uint8Array {
  if (typeof input === 'string') return input.endsWith('\n') ? input : `${input}\n`;
  return input.length > 0 && input[input.length - 1] === 0x0a ? input : Buffer.concat([input, Buffer.from('\n')]);
}

/** Exit code, or `-N` for a death by signal N (Python's convention). */
function toExitCode(code: number | null, signal: NodeJS.Signals | null): number | null {
  if (code !== null) return code;
  if (signal !== null) return -(osConstants.signals[signal] ?? 0);
  return null;
}

/**
 * After exit, output still in the pipes is read to the end; a descendant that keeps a
 * pipe open (a daemon started by the command) does not hold the call beyond the grace.
 */
async function drain(child: ChildProcess, closed: Promise<void>[], graceMs: number): Promise<void> {
  if (closed.length === 0) return;
  await new Promise<void>((resolve) => {
    const timer = systemClock.setTimeout(resolve, graceMs);
    void Promise.all(closed).then(() => {
      systemClock.clearTimeout(timer);
      resolve();
    });
  });
  child.stdout?.destroy();
  child.stderr?.destroy();
}

function streamLines(name: string, child: ChildProcess, onOutput: NonNullable<SubprocessCallData['onOutput']>): Promise<void>[] {
  const deliver = (line: string, stream: OutputStream): void => {
    try {
      onOutput(line, stream);
    } catch (error) {
      getLogger().debug(`${name}: onOutput threw; ignored`, { error });
    }
  };
  return [splitLines(child.stdout, (line) => deliver(line, 'stdout')), splitLines(child.stderr, (line) => deliver(line, 'stderr'))];
}

/**
 * Splits a stream into lines on `\n`, removing one trailing `\r`, and delivers a final
 * line without newline at the end. Resolves when the stream closes.
 */
function splitLines(stream: Readable | null, emit: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  const decoder = new StringDecoder('utf8');
  let buffered = '';
  const flushLines = (): void => {
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      emit(line.endsWith('\r') ? line.slice(0, -1) : line);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  };
  return new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      buffered += decoder.write(chunk);
      flushLines();
    });
    const finish = (): void => {
      buffered += decoder.end();
      flushLines();
      if (buffered.length > 0) emit(buffered.endsWith('\r') ? buffered.slice(0, -1) : buffered);
      buffered = '';
      resolve();
    };
    stream.once('end', finish);
    stream.once('close', () => {
      if (buffered.length > 0 || !stream.readableEnded) finish();
      resolve();
    });
    stream.once('error', () => resolve());
  });
}

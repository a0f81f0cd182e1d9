/**
 * Patroni's cancellable subprocess runner, as a statechart actor.
 *
 * @module
 */
import type { Actor } from 'xstate';
import type { SubprocessReply } from '../../machines/subprocess.machine.ts';
import { type Clock } from '../clock.ts';
import { ArgumentTypeError, ArgumentValueError, BusyError, CancelledError, RejectedError, TimeoutError } from '../errors.ts';
import { requireIdleActor, startActor } from '../runtime/startActor.ts';
import { optionalClock, optionalDuration, optionalName, optionalObject, optionalSignal, requireFunction } from '../runtime/validate.ts';
import { subprocessLogic, type OutputStream } from './subprocessLogic.ts';
import { describeAs } from '../inspect/safeJson.ts';

export type { OutputStream };

/** Options of {@link CancellableSubprocess.call}. */
export interface SubprocessCallOptions {
  /** The child's working directory; default the parent's. */
  readonly cwd?: string;
  /** The child's environment; default the parent's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to stdin (a newline is added when missing), then stdin is closed. */
  readonly input?: string | Uint8Array;
  /** Gets each output line (split on `\n`, one trailing `\r` removed); errors it throws are ignored. */
  readonly onOutput?: (line: string, stream: OutputStream) => void;
  /** Aborting terminates the process (as `cancel()` does, without the sticky flag) and rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /**
   * After this many ms the process is terminated as on an abort, and the call rejects
   * with a `TimeoutError` (Python's `TimeoutExpired`); default `Infinity`.
   */
  readonly timeoutMs?: number;
}

/** Options of the {@link CancellableSubprocess} constructor. */
export interface CancellableSubprocessOptions {
  /** A name for logs and the inspector; default `subprocess-<n>`. */
  readonly name?: string;
  /** The clock for the terminate and timeout budgets; default the system clock. */
  readonly clock?: Clock;
  /** How long `cancel()` waits after SIGTERM before SIGKILL; default 10,000 ms (Patroni's ten 1 s checks). */
  readonly terminateTimeoutMs?: number;
  /** How long a finished call waits for output pipes held open by leftover descendants; default 1,000 ms. */
  readonly pipeGraceMs?: number;
}

let counter = 0;

/**
 * Runs one subprocess at a time so that it can be found and cancelled (Patroni's
 * `CancellableSubprocess`).
 *
 * `call(argv)` spawns without a shell, in its own process group, and resolves the exit
 * code: the code itself, `-N` for a death by signal N (as Python reports it), or `null`
 * when the spawn failed. `cancel()` sends SIGTERM to the process, waits up to
 * `terminateTimeoutMs` for it to exit (not at all with `{ kill: true }`), then SIGKILLs
 * the whole tree: the process group, every descendant found in `/proc`, and every
 * process whose environment carries the call's `STATESMITH_RUN` id (which the child
 * and all it starts inherit), so a daemon that double-forked and called `setsid` is
 * found too. Leftovers of a process that exited on SIGTERM are killed as well, and
 * `cancel()` resolves once they are gone. What escapes on Linux: a process that left
 * the group and the tree *and* cleared its environment (`env -i`), or that runs as
 * another user. Without `/proc` (macOS), only the process group is killed.
 *
 * `isCancelled` is sticky: once cancelled, `call()` rejects with a `CancelledError`
 * (code `ERR_CANCELLED`) and spawns nothing until `resetIsCancelled()`. The executor
 * resets it as each task starts.
 *
 * @example
 * ```ts
 * import { CancellableSubprocess } from 'statesmith';
 * const runner = new CancellableSubprocess({ name: 'demo' });
 * const code = await runner.call(['sh', '-c', 'echo hello; exit 3'], {
 *   onOutput: (line, stream) => console.log(stream, line), // stdout hello
 * });
 * console.log(code); // 3
 * ```
 */
export class CancellableSubprocess {
  /** The runner's name in logs and the inspector. */
  readonly name: string;
  /**
   * The runner's actor (`subprocessLogic`), the only truth:
   * `idle → scheduled → running → cancelling.{terminating,killing} → done`.
   */
  readonly actor: Actor<typeof subprocessLogic>;
  /** The rejection of the command being sent, captured as the actor answers synchronously. */
  #rejections: SubprocessRejection[] | undefined;

  constructor(options?: CancellableSubprocessOptions) {
    const opts = optionalObject<CancellableSubprocessOptions>('options', options, ['name', 'clock', 'terminateTimeoutMs', 'pipeGraceMs']);
    this.name = optionalName('options.name', opts.name, () => `subprocess-${++counter}`);
    const clock = optionalClock('options.clock', opts.clock);
    // Infinity: wait for the SIGTERM to work however long it takes (cancel({ kill: true }) still kills).
    const terminateTimeoutMs = optionalDuration('options.terminateTimeoutMs', opts.terminateTimeoutMs, 10_000);
    const pipeGraceMs = optionalDuration('options.pipeGraceMs', opts.pipeGraceMs, 1_000);
    const attached = attaching;
    attaching = undefined;
    this.actor = attached ?? startActor('subprocess', subprocessLogic, { input: { name: this.name, terminateTimeoutMs, pipeGraceMs }, id: this.name, clock });
    this.actor.on('statesmith.rejected', (reply) => this.#rejections?.push(reply));
  }

  /** A facade over a runner actor someone else started (an executor's child). @internal */
  static attach(actor: unknown, name: string): CancellableSubprocess {
    attaching = actor as Actor<typeof subprocessLogic>;
    return new CancellableSubprocess({ name });
  }

  /** True once cancelled, until `resetIsCancelled()`. */
  get isCancelled(): boolean {
    return this.actor.getSnapshot().context.cancelled;
  }

  /** The running process's pid, or `null`. */
  get pid(): number | null {
    const snapshot = this.actor.getSnapshot();
    return snapshot.matches('running') || snapshot.matches('cancelling') ? snapshot.context.pid : null;
  }

  /** Clears the sticky cancelled flag (`statesmith.subprocess.resetCancelled`). */
  resetIsCancelled(): void {
    this.actor.send({ type: 'statesmith.subprocess.resetCancelled' });
  }

  /**
   * Runs `argv` (no shell) and resolves its exit code, `-N` for a death by signal N, or
   * `null` when it could not be spawned: sends `statesmith.subprocess.call` and awaits
   * its `exited`. Rejects with a `CancelledError` while cancelled, and with a `BusyError`
   * while another call runs.
   */
  async call(argv: readonly string[], options?: SubprocessCallOptions): Promise<number | null> {
    const opts = optionalObject<SubprocessCallOptions>('options', options, ['cwd', 'env', 'input', 'onOutput', 'signal', 'timeoutMs']);
    validateArgv(argv);
    const signal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    if (opts.onOutput !== undefined) requireFunction('options.onOutput', opts.onOutput);
    if (opts.cwd !== undefined && typeof opts.cwd !== 'string') throw new ArgumentTypeError('options.cwd', 'a string', opts.cwd);
    if (opts.env !== undefined) requireEnv(opts.env);
    if (opts.input !== undefined && typeof opts.input !== 'string' && !(opts.input instanceof Uint8Array)) {
      throw new ArgumentTypeError('options.input', 'a string or a Uint8Array', opts.input);
    }
    if (signal?.aborted) throw signal.reason;
    requireIdleActor(this.actor, `${this.name}.call`);
    const command = argv.join(' ');
    const call = this.actor.getSnapshot().context.call + 1;
    let onAbort: (() => void) | undefined;
    // Listening before the send: a spawn that fails at once answers during it.
    const exited = new Promise<Extract<SubprocessReply, { type: 'statesmith.subprocess.exited' }>>((resolve) => {
      const subscription = this.actor.on('statesmith.subprocess.exited', (reply) => {
        if (reply.call !== call) return;
        subscription.unsubscribe();
        resolve(reply);
      });
      const rejections: SubprocessRejection[] = [];
      this.#rejections = rejections;
      try {
        this.actor.send({
          type: 'statesmith.subprocess.call',
          argv: [...argv],
          ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
          ...(opts.env === undefined ? {} : { env: opts.env }),
          ...(opts.input === undefined ? {} : { input: opts.input }),
          ...(opts.onOutput === undefined ? {} : { onOutput: opts.onOutput }),
          ...(timeoutMs === Infinity ? {} : { timeoutMs }),
        });
      } finally {
        this.#rejections = undefined;
      }
      const rejected = rejections[0];
      if (rejected !== undefined) {
        subscription.unsubscribe();
        if (rejected.code === 'ERR_CANCELLED')
          throw new CancelledError(`${this.name}: not starting '${command}': the runner was cancelled (resetIsCancelled() re-arms it)`);
        if (rejected.code === 'ERR_BUSY')
          throw new BusyError(`${this.name}: '${this.actor.getSnapshot().context.argv?.join(' ') ?? 'a process'}' is still running; one process at a time`);
        throw new RejectedError(rejected);
      }
      onAbort = () => this.actor.send({ type: 'statesmith.subprocess.terminate', call });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    let reply: Awaited<typeof exited>;
    try {
      reply = await exited;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    if (reply.stopReason === 'abort' && signal?.aborted) throw signal.reason;
    if (reply.stopReason === 'timeout') throw new TimeoutError(`${this.name}: '${command}' ran longer than ${timeoutMs} ms; terminated`);
    return reply.exitCode;
  }

  /**
   * Sets the sticky cancelled flag and stops the running process, if any: SIGTERM, up to
   * `terminateTimeoutMs` for it to exit (no wait with `kill`), then SIGKILL to the whole
   * tree. Resolves once the process and its descendants are gone.
   */
  cancel(options?: { readonly kill?: boolean }): Promise<void> {
    let kill: boolean;
    try {
      const value = optionalObject<{ kill: boolean }>('options', options, ['kill']).kill ?? false;
      if (typeof value !== 'boolean') throw new ArgumentTypeError('options.kill', 'a boolean', value);
      kill = value;
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve) => {
      const subscription = this.actor.on('statesmith.subprocess.cancelled', () => {
        subscription.unsubscribe();
        resolve();
      });
      this.actor.send({ type: 'statesmith.subprocess.cancel', ...(kill ? { kill } : {}) });
    });
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(CancellableSubprocess, (subprocess) => `[CancellableSubprocess ${subprocess.name}]`);

type SubprocessRejection = Extract<SubprocessReply, { type: 'statesmith.rejected' }>;

/** The actor `CancellableSubprocess.attach` hands to the constructor it calls. */
let attaching: Actor<typeof subprocessLogic> | undefined;

function validateArgv(argv: unknown): asserts argv is readonly string[] {
  if (!Array.isArray(argv)) throw new ArgumentTypeError('argv', 'an array of strings', argv);
  if (argv.length === 0) throw new ArgumentValueError('argv', 'a non-empty array (the command, then its arguments)', argv);
  argv.forEach((item, i) => {
    if (typeof item !== 'string') throw new ArgumentTypeError(`argv[${i}]`, 'a string', item);
  });
  if (argv[0] === '') throw new ArgumentValueError('argv[0]', 'a command name', argv[0]);
}

/** An environment for the child: an object of strings (Node would spread a string's characters into variables named 0, 1, ...). */
function requireEnv(env: unknown): void {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) {
    throw new ArgumentTypeError('options.env', 'an object of environment variables, such as { ...process.env, PGDATA: "/data" }', env);
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && typeof value !== 'string') throw new ArgumentTypeError(`options.env.${key}`, 'a string', value);
  }
}

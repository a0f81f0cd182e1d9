/**
 * Patroni's cancellable subprocess runner, as a statechart actor.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Actor } from 'xstate';
import { subprocessMachine } from '../../machines/subprocess.machine.ts';
import { type Clock } from '../clock.ts';
import { ArgumentTypeError, ArgumentValueError, BusyError, CancelledError, TimeoutError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { createDeferred, type Deferred } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { optionalClock, optionalDuration, optionalName, optionalObject, optionalSignal, requireFunction } from '../runtime/validate.ts';
import { isAlive, listDescendants, listMarked, RUN_MARKER, sendSignal } from './processTree.ts';

/** Which pipe a line came from. */
export type OutputStream = 'stdout' | 'stderr';

/** Options of {@link CancellableSubprocess.call}. */
export interface SubprocessCallOptions {
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
  readonly name?: string;
  readonly clock?: Clock;
  /** How long `cancel()` waits after SIGTERM before SIGKILL; default 10,000 ms (Patroni's ten 1 s checks). */
  readonly terminateTimeoutMs?: number;
  /** How long a finished call waits for output pipes held open by leftover descendants; default 1,000 ms. */
  readonly pipeGraceMs?: number;
}

interface Run {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly command: string;
  readonly exited: Deferred<void>;
  /** Descendants seen while cancelling, killed again once the leader is gone. */
  readonly descendants: Set<number>;
  /** The value of `STATESMITH_RUN` in the environment of this call's processes. */
  readonly runId: string;
  termination: Promise<void> | undefined;
  escalate: (() => void) | undefined;
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
  readonly name: string;
  /** The statechart actor: `idle → scheduled → running → cancelling.{terminating,killing} → done`. */
  readonly actor: Actor<typeof subprocessMachine>;
  readonly #clock: Clock;
  readonly #terminateTimeoutMs: number;
  readonly #pipeGraceMs: number;
  #run: Run | null = null;

  constructor(options?: CancellableSubprocessOptions) {
    const opts = optionalObject<CancellableSubprocessOptions>('options', options, ['name', 'clock', 'terminateTimeoutMs', 'pipeGraceMs']);
    this.name = optionalName('options.name', opts.name, () => `subprocess-${++counter}`);
    this.#clock = optionalClock('options.clock', opts.clock);
    // Infinity: wait for the SIGTERM to work however long it takes (cancel({ kill: true }) still kills).
    this.#terminateTimeoutMs = optionalDuration('options.terminateTimeoutMs', opts.terminateTimeoutMs, 10_000);
    this.#pipeGraceMs = optionalDuration('options.pipeGraceMs', opts.pipeGraceMs, 1_000);
    this.actor = startActor('subprocess', subprocessMachine, { input: { name: this.name }, id: this.name });
  }

  /** True once cancelled, until `resetIsCancelled()`. */
  get isCancelled(): boolean {
    return this.actor.getSnapshot().context.cancelled;
  }

  /** The running process's pid, or `null`. */
  get pid(): number | null {
    return this.#run?.pid ?? null;
  }

  /** Clears the sticky cancelled flag. */
  resetIsCancelled(): void {
    this.actor.send({ type: 'statesmith.subprocess.resetCancelled' });
  }

  /**
   * Runs `argv` (no shell) and resolves its exit code, `-N` for a death by signal N, or
   * `null` when it could not be spawned. Rejects with a `CancelledError` while cancelled,
   * and with a `BusyError` while another call runs.
   */
  async call(argv: readonly string[], options?: SubprocessCallOptions): Promise<number | null> {
    const opts = optionalObject<SubprocessCallOptions>('options', options, ['cwd', 'env', 'input', 'onOutput', 'signal', 'timeoutMs']);
    validateArgv(argv);
    const callerSignal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    // A time-out is an abort with a TimeoutError for its reason, on this runner's clock.
    const timeout = timeoutMs === Infinity ? undefined : new AbortController();
    const signal = timeout === undefined ? callerSignal : callerSignal === undefined ? timeout.signal : AbortSignal.any([callerSignal, timeout.signal]);
    if (opts.onOutput !== undefined) requireFunction('options.onOutput', opts.onOutput);
    if (opts.cwd !== undefined && typeof opts.cwd !== 'string') throw new ArgumentTypeError('options.cwd', 'a string', opts.cwd);
    if (opts.env !== undefined) requireEnv(opts.env);
    if (opts.input !== undefined && typeof opts.input !== 'string' && !(opts.input instanceof Uint8Array)) {
      throw new ArgumentTypeError('options.input', 'a string or a Uint8Array', opts.input);
    }
    if (signal?.aborted) throw signal.reason;
    const command = argv.join(' ');
    // The cancelled check and the spawn are one synchronous step: a cancel either comes
    // first (and this call refuses) or finds the process registered.
    if (this.isCancelled) {
      throw new CancelledError(`${this.name}: not starting '${command}': the runner was cancelled (resetIsCancelled() re-arms it)`);
    }
    if (this.#run) throw new BusyError(`${this.name}: '${this.#run.command}' is still running; one process at a time`);

    this.actor.send({ type: 'statesmith.subprocess.call', argv: [...argv] });
    const streaming = opts.onOutput !== undefined;
    const runId = `${process.pid}.${randomBytes(8).toString('hex')}`;
    let child: ChildProcess;
    try {
      child = spawn(argv[0] as string, argv.slice(1), {
        cwd: opts.cwd,
        env: { ...(opts.env ?? process.env), [RUN_MARKER]: runId },
        detached: true,
        stdio: [opts.input !== undefined ? 'pipe' : 'ignore', streaming ? 'pipe' : 'ignore', streaming ? 'pipe' : 'ignore'],
      });
    } catch (error) {
      return this.#spawnFailed(command, error);
    }
    const spawnError = createDeferred<unknown>();
    child.on('error', (error) => spawnError.resolve(error));
    if (child.pid === undefined) return this.#spawnFailed(command, await spawnError.promise);

    const run: Run = {
      child,
      pid: child.pid,
      runId,
      command,
      exited: createDeferred(),
      descendants: new Set(),
      termination: undefined,
      escalate: undefined,
    };
    this.#run = run;
    this.actor.send({ type: 'statesmith.subprocess.spawned', pid: run.pid });
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    child.once('exit', (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      run.exited.resolve();
    });
    const onAbort = (): void => void this.#terminate(run, false);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      timeout === undefined ? undefined : this.#clock.setTimeout(() => timeout.abort(new TimeoutError(`${this.name}: '${command}' ran longer than ${timeoutMs} ms; terminated`)), timeoutMs);
    try {
      const closed = streaming ? this.#stream(child, opts.onOutput as NonNullable<SubprocessCallOptions['onOutput']>) : [];
      if (opts.input !== undefined && child.stdin) {
        // A child that exits without reading its input makes the write fail with EPIPE: not our error.
        child.stdin.on('error', () => undefined);
        child.stdin.end(withNewline(opts.input));
      }
      await run.exited.promise;
      await this.#drain(child, closed);
      if (run.termination) await run.termination;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#run = null;
      this.actor.send({ type: 'statesmith.subprocess.exited', exitCode, signal: exitSignal });
    }
    if (signal?.aborted) throw signal.reason;
    return toExitCode(exitCode, exitSignal);
  }

  /**
   * Sets the sticky cancelled flag and stops the running process, if any: SIGTERM, up to
   * `terminateTimeoutMs` for it to exit (no wait with `kill`), then SIGKILL to the whole
   * tree. Resolves once the process and its descendants are gone.
   */
  async cancel(options?: { readonly kill?: boolean }): Promise<void> {
    const kill = optionalObject<{ kill: boolean }>('options', options, ['kill']).kill ?? false;
    this.actor.send({ type: 'statesmith.subprocess.cancel' });
    const run = this.#run;
    if (!run || run.exited.settled) return;
    await this.#terminate(run, kill);
  }

  #terminate(run: Run, kill: boolean): Promise<void> {
    if (run.termination) {
      if (kill) run.escalate?.();
      return run.termination;
    }
    const escalateNow = createDeferred<void>();
    run.escalate = () => escalateNow.resolve();
    run.termination = (async () => {
      this.actor.send({ type: 'statesmith.subprocess.terminate' });
      getLogger().info(`Terminating ${run.command}`, { subprocess: this.name, pid: run.pid });
      collect(run);
      sendSignal(run.pid, 'SIGTERM');
      if (!kill) await this.#waitUpTo(Promise.race([run.exited.promise, escalateNow.promise]), this.#terminateTimeoutMs);
      if (!run.exited.settled) {
        this.actor.send({ type: 'statesmith.subprocess.escalate' });
        getLogger().warn(`Killing ${run.command} and its descendants`, { subprocess: this.name, pid: run.pid });
        // Freeze the leader so it cannot fork while its tree is collected, then kill it all.
        sendSignal(run.pid, 'SIGSTOP');
        collect(run);
        this.#killTree(run);
        await run.exited.promise;
      }
      // The leader is gone; whatever it left behind in its group, its tree or marked with
      // its run id (a daemon that left both) goes too.
      collect(run);
      this.#killTree(run);
      await this.#waitForDeath(run.descendants);
    })();
    return run.termination;
  }

  #killTree(run: Run): void {
    sendSignal(-run.pid, 'SIGKILL');
    for (const pid of run.descendants) sendSignal(pid, 'SIGKILL');
  }

  /** Waits (bounded) until every killed descendant is dead, so `cancel()` means "gone". */
  async #waitForDeath(pids: ReadonlySet<number>): Promise<void> {
    for (let waited = 0; waited < 2_000; waited += 10) {
      if (![...pids].some(isAlive)) return;
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, 10));
    }
    getLogger().warn(`${this.name}: descendants still alive after SIGKILL`, { pids: [...pids].filter(isAlive) });
  }

  /** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
  #waitUpTo(promise: Promise<unknown>, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimeout(resolve, ms);
      promise.then(
        () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
        () => {
          this.#clock.clearTimeout(timer);
          resolve();
        },
      );
    });
  }

  #stream(child: ChildProcess, onOutput: NonNullable<SubprocessCallOptions['onOutput']>): Promise<void>[] {
    const deliver = (line: string, stream: OutputStream): void => {
      try {
        onOutput(line, stream);
      } catch (error) {
        getLogger().debug(`${this.name}: onOutput threw; ignored`, { error });
      }
    };
    return [
      splitLines(child.stdout, (line) => deliver(line, 'stdout')),
      splitLines(child.stderr, (line) => deliver(line, 'stderr')),
    ];
  }

  /**
   * After exit, output still in the pipes is read to the end; a descendant that keeps a
   * pipe open (a daemon started by the command) does not hold the call beyond the grace.
   */
  async #drain(child: ChildProcess, closed: Promise<void>[]): Promise<void> {
    if (closed.length === 0) return;
    await this.#waitUpTo(Promise.all(closed), this.#pipeGraceMs);
    child.stdout?.destroy();
    child.stderr?.destroy();
  }

  #spawnFailed(command: string, error: unknown): null {
    getLogger().error(`${this.name}: failed to spawn '${command}'`, { error });
    const message = error instanceof Error ? error.message : String(error);
    this.actor.send({ type: 'statesmith.subprocess.spawnFailed', error: message });
    return null;
  }
}

function validateArgv(argv: unknown): asserts argv is readonly string[] {
  if (!Array.isArray(argv)) throw new ArgumentTypeError('argv', 'an array of strings', argv);
  if (argv.length === 0) throw new ArgumentValueError('argv', 'a non-empty array (the command, then its arguments)', argv);
  argv.forEach((item, i) => {
    if (typeof item !== 'string') throw new ArgumentTypeError(`argv[${i}]`, 'a string', item);
  });
  if (argv[0] === '') throw new ArgumentValueError('argv[0]', 'a command name', argv[0]);
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

/** An environment for the child: an object of strings (Node would spread a string's characters into variables named 0, 1, ...). */
function requireEnv(env: unknown): void {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) {
    throw new ArgumentTypeError('options.env', 'an object of environment variables, such as { ...process.env, PGDATA: "/data" }', env);
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && typeof value !== 'string') throw new ArgumentTypeError(`options.env.${key}`, 'a string', value);
  }
}

/** Adds to `run.descendants` every process of the call now alive: its `/proc` tree, and whatever carries its run id. */
function collect(run: Run): void {
  for (const pid of listDescendants(run.pid)) run.descendants.add(pid);
  for (const pid of listMarked(run.runId)) run.descendants.add(pid);
}

/**
 * The HA loop's wake-up channel on RxJS (Patroni's `dcs.event` + `Ha.wakeup`).
 *
 * @module
 */
import { Subject, type Observable } from 'rxjs';
import { type Clock } from '../clock.ts';
import { getLogger } from '../logger.ts';
import { optionalClock, optionalObject, requireDuration, signalOption } from '../runtime/validate.ts';
import { describeAs } from '../inspect/safeJson.ts';

/** One wake-up: why, with what detail, when (clock time), and how many were folded into it. */
export interface Wakeup {
  /** Why the loop was woken, as the first folded `wakeup()` call said it. */
  readonly reason: string;
  /** The detail object of that first call, if it gave one. */
  readonly detail: object | undefined;
  /** The bus clock's `now()` when the first folded wake-up arrived. */
  readonly at: number;
  /** How many `wakeup()` calls this one stands for (more than 1 when several came while nobody waited). */
  readonly count: number;
}

/** Options of the {@link WakeupBus} constructor. */
export interface WakeupBusOptions {
  /** The clock for wait timeouts and wake-up times; default the system clock. */
  readonly clock?: Clock;
}

interface Waiter {
  settle(wakeup: Wakeup | undefined): void;
}

/**
 * A level-triggered wake-up event with an RxJS stream of every wake-up.
 *
 * `wakeup()` from anywhere never throws. A wake-up that arrives while nobody waits is
 * latched: the next `wait()` returns it at once and consumes it, so a wake-up during an
 * HA cycle is never lost. Several latched wake-ups fold into one (the first reason, with
 * `count`). `wakeups$` is hot: subscribers see the wake-ups that come after they subscribe.
 *
 * @example
 * ```ts
 * import { WakeupBus } from 'statesmith';
 * const bus = new WakeupBus();
 * bus.wakeups$.subscribe((w) => console.log('seen', w.reason));
 * bus.wakeup('task finished', { action: 'restart' }); // seen task finished
 * const w = await bus.wait(1000);
 * console.log(w?.reason, w?.detail); // task finished { action: 'restart' }
 * console.log(await bus.wait(0)); // undefined
 * ```
 */
export class WakeupBus {
  readonly #clock: Clock;
  readonly #subject = new Subject<Wakeup>();
  readonly #waiters = new Set<Waiter>();
  #latched: Wakeup | undefined;
  #completed = false;

  /** Every wake-up as it happens (hot; completes with {@link WakeupBus.complete}). */
  readonly wakeups$: Observable<Wakeup>;

  constructor(options?: WakeupBusOptions) {
    const opts = optionalObject<WakeupBusOptions>('options', options, ['clock']);
    this.#clock = optionalClock('options.clock', opts.clock);
    this.wakeups$ = this.#subject.asObservable();
  }

  /** True when a wake-up is latched and the next `wait()` will return at once. */
  get pending(): boolean {
    return this.#latched !== undefined;
  }

  /** True once {@link WakeupBus.complete} was called. */
  get completed(): boolean {
    return this.#completed;
  }

  /**
   * Wakes the waiters, or latches the wake-up for the next `wait()`. Never throws: a bus
   * that is completed ignores it, and a reason that is not a string is converted.
   */
  wakeup(reason: string = 'wakeup', detail?: object): void {
    if (this.#completed) return;
    const wakeup: Wakeup = {
      reason: typeof reason === 'string' ? reason : describeReason(reason),
      detail: detail !== null && typeof detail === 'object' ? detail : undefined,
      at: this.#clock.now(),
      count: 1,
    };
    if (this.#waiters.size > 0) {
      for (const waiter of [...this.#waiters]) waiter.settle(wakeup);
    } else if (this.#latched) {
      this.#latched = Object.assign({}, this.#latched, { count: this.#latched.count + 1 });
    } else {
      this.#latched = wakeup;
    }
    try {
      this.#subject.next(wakeup);
    } catch (error) {
      // RxJS reports subscriber errors asynchronously; this only guards exotic subjects.
      getLogger().error('a wakeups$ subscriber threw', { error });
    }
  }

  /**
   * Waits up to `timeoutMs` for a wake-up. Resolves the wake-up (consuming it), or
   * `undefined` on timeout or once the bus is completed; rejects with `signal.reason`
   * when aborted. A wake-up latched before the call returns at once.
   */
  wait(timeoutMs: number, options?: { readonly signal?: AbortSignal }): Promise<Wakeup | undefined> {
    let signal: AbortSignal | undefined;
    try {
      requireDuration('timeoutMs', timeoutMs);
      signal = signalOption('options', options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#latched) {
      const latched = this.#latched;
      this.#latched = undefined;
      return Promise.resolve(latched);
    }
    if (this.#completed || timeoutMs === 0) return Promise.resolve(undefined);
    return new Promise<Wakeup | undefined>((resolve, reject) => {
      let timer: unknown;
      const finish = (): void => {
        this.#waiters.delete(waiter);
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        settle: (wakeup) => {
          finish();
          resolve(wakeup);
        },
      };
      const onAbort = (): void => {
        finish();
        reject(signal?.reason);
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) timer = this.#clock.setTimeout(() => waiter.settle(undefined), timeoutMs);
    });
  }

  /** Ends the bus: `wakeups$` completes, pending and later waits resolve `undefined`. */
  complete(): void {
    if (this.#completed) return;
    this.#completed = true;
    this.#latched = undefined;
    for (const waiter of [...this.#waiters]) waiter.settle(undefined);
    this.#subject.complete();
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(WakeupBus, () => '[WakeupBus]');

/** A reason that is not a string, as text; never throws (not for `Object.create(null)`, nor for a `toString` that throws). */
function describeReason(reason: unknown): string {
  try {
    return String(reason);
  } catch {
    try {
      return Object.prototype.toString.call(reason);
    } catch {
      // A revoked proxy, or one whose every trap throws: wakeup() still never throws.
      return `[a ${typeof reason} that cannot be read]`;
    }
  }
}

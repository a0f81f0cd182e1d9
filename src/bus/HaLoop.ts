/**
 * The HA loop as a service: `runLoop` started, stopped and awaited like any other
 * `ServiceBase`.
 *
 * @module
 */
import { ArgumentTypeError } from '../errors.ts';
import { requireFunction } from '../runtime/validate.ts';
import { ServiceBase } from '../tasks/ServiceBase.ts';
import { runLoop, type CycleContext, type RunLoopOptions } from './runLoop.ts';

/** Options of {@link HaLoop}: `runLoop`'s, with the cycle, and without the signal (the service owns it). */
export interface HaLoopOptions extends Omit<RunLoopOptions, 'signal'> {
  /** One HA cycle; it runs holding the executor lock when `executor` is given. */
  readonly cycle: (context: CycleContext) => unknown;
  /** The service's id in logs, `toString()` and the inspector; generated when left out. */
  readonly uniqueId?: string;
}

/**
 * Patroni's HA loop as a service: `start()` runs a cycle every `intervalMs` (at once
 * when the bus is woken), `stop()` ends it after the current cycle's await, and a failed
 * cycle is logged without stopping the loop.
 *
 * @example
 * ```ts
 * import { HaLoop, WakeupBus } from 'statesmith';
 * const bus = new WakeupBus();
 * let cycles = 0;
 * const loop = new HaLoop({ bus, intervalMs: 10_000, cycle: () => { if (++cycles < 3) bus.wakeup('more'); } }).start();
 * while (cycles < 3) await new Promise((resolve) => setTimeout(resolve, 1));
 * await loop.stop();
 * console.log(cycles, loop.isRunning); // 3 false
 * ```
 */
export class HaLoop extends ServiceBase {
  readonly #options: HaLoopOptions;

  constructor(options: HaLoopOptions) {
    if (typeof options !== 'object' || options === null) throw new ArgumentTypeError('options', 'an options object', options);
    requireFunction('options.cycle', options.cycle);
    const { uniqueId, clock } = options;
    super({ ...(uniqueId === undefined ? {} : { uniqueId }), ...(clock === undefined ? {} : { clock }) });
    this.#options = options;
  }

  /** Runs the loop until the service is stopped. */
  protected async main(signal: AbortSignal): Promise<void> {
    const { cycle, uniqueId: _id, ...loop } = this.#options;
    await runLoop(cycle, { ...loop, signal });
  }
}

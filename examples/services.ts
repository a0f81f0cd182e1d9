/**
 * A volume controller as a service (frequenz's ServiceBase, with restart policies).
 *
 * `main` watches a queue of volume requests; a `poller` subtask syncs with a flaky
 * storage API and is restarted with back-off when it fails (twice here), and a
 * `reporter` subtask finishes early and is acknowledged through `asCompleted`. After a
 * moment the service is stopped: every task is cancelled, the cancellations are hidden,
 * and the poller's actor history shows its restarts. Run: node --conditions=statesmith-source --import tsx examples/services.ts
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceBase, setLogger, type LogFields } from 'statesmith';

const t0 = performance.now();
const line = (who: string, what: string): void => console.log(`+${String(Math.round(performance.now() - t0)).padStart(4)} ms  ${who.padEnd(9)} ${what}`);
const log = (level: string) => (message: string, fields?: LogFields) =>
  line('log', `${level}: ${message}${fields?.['error'] instanceof Error ? ` (${fields['error'].message})` : ''}`);
setLogger({ debug: () => undefined, info: log('info'), warn: log('warn'), error: log('error') });

class VolumeController extends ServiceBase {
  syncs = 0;
  #apiFailures = 2;

  protected async main(signal: AbortSignal): Promise<void> {
    const poller = this.createTask((sub) => this.#poll(sub), {
      name: 'poller',
      restart: { maxRestarts: 5, withinMs: 10_000, backoff: { initialMs: 50, factor: 2, jitter: 0 } },
    });
    poller.actor.subscribe((s) => line('poller', typeof s.value === 'string' ? s.value : JSON.stringify(s.value)));
    this.createTask(async () => 'inventory of 12 volumes', { name: 'reporter' });
    for await (const task of this.taskGroup.asCompleted({ timeoutMs: 100 })) {
      line('main', `${task.name} finished: ${String(task.result())}`);
    }
    // Nothing else to acknowledge for now: serve requests until stopped.
    for (let request = 1; ; request++) {
      await sleep(150, undefined, { signal });
      line('main', `served volume request ${request} (${this.syncs} syncs so far)`);
    }
  }

  async #poll(signal: AbortSignal): Promise<never> {
    for (;;) {
      await sleep(40, undefined, { signal });
      if (this.#apiFailures > 0) {
        this.#apiFailures--;
        throw new Error('storage API returned 503');
      }
      this.syncs++;
    }
  }
}

const controller = new VolumeController({ uniqueId: 'volumes' }).start();
line('main', `${String(controller)} started; isRunning=${controller.isRunning}`);
await sleep(700);
await controller.stop('maintenance window');
line('main', `stopped cleanly; isRunning=${controller.isRunning}, state ${JSON.stringify(controller.actor.getSnapshot().value)}`);

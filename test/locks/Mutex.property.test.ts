/**
 * Property: under any interleaving of acquire (plain, with a timeout, or abortable),
 * abort, time passing and release, the Mutex keeps mutual exclusion, grants in FIFO
 * order among the waiters that stayed, and never leaves the lock free while someone
 * still waits (no lost wake-up). Runs on the ManualClock.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { ManualClock, Mutex, type LockHandle } from '../../src/index.ts';
import { settle } from '../support/async.ts';

type Command =
  | { readonly kind: 'acquire'; readonly timeoutMs: number | undefined; readonly abortable: boolean }
  | { readonly kind: 'abort'; readonly pick: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'release' };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant('acquire' as const),
    timeoutMs: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
    abortable: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 30 }) }),
  fc.constant({ kind: 'release' as const }),
);

interface Contender {
  readonly id: number;
  status: 'waiting' | 'holding' | 'released' | 'gave up';
  handle: LockHandle | undefined;
  readonly controller: AbortController | undefined;
}

describe('Mutex (property-based)', () => {
  it('keeps mutual exclusion, FIFO order among staying waiters, and loses no wake-up', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 40 }), async (commands) => {
        const clock = new ManualClock();
        const mutex = new Mutex({ clock });
        const contenders: Contender[] = [];
        const grants: number[] = [];
        let nextId = 0;

        for (const cmd of commands) {
          if (cmd.kind === 'acquire') {
            const controller = cmd.abortable ? new AbortController() : undefined;
            const c: Contender = { id: nextId++, status: 'waiting', handle: undefined, controller };
            contenders.push(c);
            mutex
              .acquire({
                owner: c.id,
                ...(cmd.timeoutMs !== undefined ? { timeoutMs: cmd.timeoutMs } : {}),
                ...(controller ? { signal: controller.signal } : {}),
              })
              .then(
                (handle) => {
                  c.status = 'holding';
                  c.handle = handle;
                  grants.push(c.id);
                },
                () => (c.status = 'gave up'),
              );
          } else if (cmd.kind === 'abort') {
            const abortable = contenders.filter((c) => c.controller && c.status === 'waiting');
            abortable[cmd.pick % Math.max(1, abortable.length)]?.controller?.abort(new Error('abort'));
          } else if (cmd.kind === 'advance') {
            await clock.advance(cmd.ms);
          } else {
            const holder = contenders.find((c) => c.status === 'holding');
            if (holder) {
              holder.status = 'released';
              holder.handle?.release();
            }
          }
          await settle(1);

          const holding = contenders.filter((c) => c.status === 'holding');
          expect(holding.length, 'mutual exclusion').to.be.at.most(1);
          expect(mutex.locked, 'the lock is held exactly when someone holds it').to.equal(holding.length === 1);
          if (holding[0]) expect(mutex.owner).to.equal(holding[0].id);
          const waiting = contenders.filter((c) => c.status === 'waiting');
          expect(mutex.waiting, 'waiter count').to.equal(waiting.length);
          if (waiting.length > 0) expect(mutex.locked, 'no lost wake-up').to.equal(true);
        }
        // FIFO: grants happen in the order the granted contenders asked.
        expect(grants).to.deep.equal([...grants].sort((a, b) => a - b));
      }),
      { numRuns: 150 },
    );
  });
});

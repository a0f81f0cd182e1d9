/**
 * What the partition tests share: members in hosts of the harness, a fenced store in the
 * test's own process, and the figures `npm run faults` prints.
 */
import type { ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { openStore, type SnapshotStore } from '../../src/index.ts';
import type { FaultNet, NetHost } from '../support/netfault.ts';
import { sqliteUrl } from '../support/servers.ts';

const fixture = new URL('./fixtures/member.ts', import.meta.url);

/** Something a member said, unasked: `lost`, `deposed`, `state`, `write`, `ready`. */
export interface MemberEvent {
  readonly event: string;
  readonly at: bigint;
  readonly [key: string]: unknown;
}

/** The machine's monotonic clock, as the members stamp their events (`process.hrtime.bigint()`). */
export const monotonic = (): bigint => process.hrtime.bigint();

/** A coordination member in a host of the harness (fixtures/member.ts), driven over IPC. */
export class Member {
  readonly name: string;
  readonly events: MemberEvent[] = [];
  readonly #child: ChildProcess;
  readonly #answers = new Map<number, (answer: Record<string, unknown>) => void>();
  readonly #watchers = new Set<() => void>();
  #next = 0;

  constructor(
    net: FaultNet,
    host: NetHost,
    config: { readonly url: string; readonly lockTtlMs: number; readonly heartbeatMs?: number },
    onWrite?: (write: MemberEvent) => void,
  ) {
    this.name = host.name;
    this.#child = net.fork(host, fixture, [JSON.stringify({ heartbeatMs: 250, ...config, agentId: host.name })], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (message: Record<string, unknown>) => {
      if (typeof message['id'] === 'number') return this.#answers.get(message['id'])?.(message);
      const event = { ...message, at: BigInt(message['at'] as string) } as MemberEvent;
      if (event.event === 'write') onWrite?.(event);
      else this.events.push(event);
      for (const watch of this.#watchers) watch();
    });
  }

  /** Sends a command and waits for its answer (at most `ms`); an error it answered with is thrown. */
  async ask(command: Record<string, unknown>, ms = 30_000): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const answer = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#answers.delete(id);
        reject(new Error(`${this.name} did not answer ${JSON.stringify(command)} within ${ms} ms`));
      }, ms);
      this.#answers.set(id, (message) => {
        clearTimeout(timer);
        this.#answers.delete(id);
        resolve(message);
      });
      this.#child.send({ id, ...command });
    });
    if (typeof answer['error'] === 'string') throw new Error(`${this.name}: ${answer['error']}`);
    return answer;
  }

  /** The first event matching `test` (already seen, or the next), waiting at most `ms`. */
  event(test: (event: MemberEvent) => boolean, ms: number, what: string): Promise<MemberEvent> {
    const found = this.events.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#watchers.delete(watch);
        reject(
          new Error(
            `${this.name}: no ${what} within ${ms} ms (events: ${this.events.map((e) => e.event + (e['state'] ? `:${String(e['state'])}` : '')).join(', ')})`,
          ),
        );
      }, ms);
      const watch = (): void => {
        const seen = this.events.find(test);
        if (seen === undefined) return;
        clearTimeout(timer);
        this.#watchers.delete(watch);
        resolve(seen);
      };
      this.#watchers.add(watch);
    });
  }

  ready(ms = 20_000): Promise<MemberEvent> {
    return this.event((e) => e.event === 'ready', ms, 'start');
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

/** What the fenced store saw of one writer. */
export interface WriterTally {
  accepted: number;
  refused: number;
  /**
   * Writes that landed after the store had accepted another writer's write with a fence as large
   * or larger: refused, or accepted (must stay 0; only a fence handed out twice could be).
   */
  staleRefused: number;
  staleAccepted: number;
  /** Writes made (decided, with `held` true) after the next holder was granted the lock (must stay 0). */
  madeAfterSuperseded: number;
}

/**
 * The resource the lock guards: statesmith's own fenced snapshot store (`openStore`, SQLite in
 * the test's temp dir), whose `save` writes nothing when a larger fence is stored (an equal one
 * passes: one holder writes many times). It is reached from the test's process, over IPC from
 * the members, so a partition between a member and the coordination server does not cut the
 * member off from it: the dangerous case. A writer's writes may be held for `delayMs` on their
 * way (a slow path to the storage), so writes decided while their writer still held the lock
 * land after the next holder's.
 */
export class FencedStore {
  readonly #store: SnapshotStore;
  readonly #largestOf = new Map<string, bigint>();
  readonly #tallies = new Map<string, WriterTally>();
  /** When each writer stopped being the holder, on the shared clock (set by the test at the next grant). */
  readonly #supersededAt = new Map<string, bigint>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #made: Array<{ writer: string; madeAt: bigint }> = [];
  /** Saves go to the store one at a time, in the order they land. */
  #landing: Promise<void> = Promise.resolve();
  #pending = 0;

  private constructor(store: SnapshotStore) {
    this.#store = store;
  }

  /** A fenced store in a SQLite file of its own. */
  static async open(): Promise<FencedStore> {
    return new FencedStore(await openStore(sqliteUrl(`fenced-${randomBytes(4).toString('hex')}.db`)));
  }

  /** Every write as it landed: who, with what fence, when it was made and when it landed, and whether it was accepted. */
  readonly log: Array<{ writer: string; fence: bigint; madeAt: bigint; landedAt: bigint; accepted: boolean; stale: boolean }> = [];

  /** The write of `writer`, made at `madeAt` (with its `held` true), held `delayMs` before it lands. */
  write(writer: string, fence: bigint, madeAt: bigint, delayMs = 0): void {
    this.#made.push({ writer, madeAt });
    this.#pending++;
    const land = (): void => {
      this.#landing = this.#landing.then(() => this.#apply(writer, fence, madeAt)).finally(() => this.#pending--);
    };
    if (delayMs <= 0) return land();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      land();
    }, delayMs);
    this.#timers.add(timer);
  }

  /** From `at` on, `writer` is not the holder any more (the next one was granted then, on the shared clock). */
  superseded(writer: string, at: bigint): void {
    this.#supersededAt.set(writer, at);
  }

  /** Resolves once every write made so far has landed (bounded: the test's own timeout). */
  async settled(): Promise<void> {
    while (this.#pending > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    await this.#landing;
  }

  tally(writer: string): WriterTally {
    let tally = this.#tallies.get(writer);
    if (tally === undefined) this.#tallies.set(writer, (tally = { accepted: 0, refused: 0, staleRefused: 0, staleAccepted: 0, madeAfterSuperseded: 0 }));
    const superseded = this.#supersededAt.get(writer);
    tally.madeAfterSuperseded = superseded === undefined ? 0 : this.#made.filter((w) => w.writer === writer && w.madeAt > superseded).length;
    return tally;
  }

  /** The largest fence of `writer`'s that the store accepted (-1 when none). */
  largestFenceOf(writer: string): bigint {
    return this.#largestOf.get(writer) ?? -1n;
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await this.#landing.catch(() => undefined);
    await this.#store.close();
  }

  async #apply(writer: string, fence: bigint, madeAt: bigint): Promise<void> {
    const tally = this.tally(writer);
    const landedAt = monotonic();
    let stale = false;
    for (const [other, largest] of this.#largestOf) if (other !== writer && largest >= fence) stale = true;
    const accepted = await this.#store.save('guarded-resource', { snapshot: { writer, fence }, version: 1, fence });
    this.log.push({ writer, fence, madeAt, landedAt, accepted, stale });
    if (accepted) {
      if (fence > (this.#largestOf.get(writer) ?? -1n)) this.#largestOf.set(writer, fence);
      tally.accepted++;
      if (stale) tally.staleAccepted++;
    } else {
      tally.refused++;
      if (stale) tally.staleRefused++;
    }
  }
}

/** Milliseconds between two readings of the shared monotonic clock. */
export function msBetween(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6;
}

/**
 * Appends one figure for `npm run faults` (when it asked for them: `STATESMITH_FAULTS_REPORT`):
 * per backend and fault, any of `lostLeases` (when the member that was cut off saw its loss,
 * in leases after the fault), `grantedLeases` (when the other was granted), `marginMs` (between
 * the two), `grantedAfterHealMs`, `staleRefused`, `staleAccepted`, `outcome`, `runs`.
 */
export function reportFigure(figure: Record<string, string | number>): void {
  const file = process.env['STATESMITH_FAULTS_REPORT'];
  if (file !== undefined) appendFileSync(file, `${JSON.stringify(figure)}\n`);
}

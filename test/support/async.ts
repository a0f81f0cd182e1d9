/** Helpers for tests that must observe async progress without sleeping. */
import { flushMicrotasks } from '../../src/testing/ManualClock.ts';

export { flushMicrotasks };

/** Lets pending promise chains run to completion (a few macrotask turns). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await flushMicrotasks();
}

/** A promise with its resolver exposed, for tests that decide when a task ends. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void; fail(error: unknown): void } {
  let open!: (value: T) => void;
  let fail!: (error: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** Resolves whether `promise` has settled by now (after letting microtasks run). */
export async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await settle();
  return settled;
}

/** Waits for a real-time condition, polling every 10 ms, bounded by `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The reason `promise` rejects with; fails the test if it fulfils instead. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`expected a rejection, but the promise fulfilled with ${String(value)}`);
}

/** Every reply an actor emits from now on, in order (its `on('*')`). */
export function heard<TReply extends { type: string } = { type: string } & Record<string, unknown>>(actor: object): TReply[] {
  const replies: TReply[] = [];
  (actor as { on(type: '*', fn: (event: unknown) => void): unknown }).on('*', (event) => replies.push(event as TReply));
  return replies;
}

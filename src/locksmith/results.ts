/**
 * The outcomes of forcing and recognizing a lock, with asyncutils' names and numbers.
 *
 * In Python both are `IntEnum`s, so `succeeded()` cannot tell `ForceResult.OWNER_COMPLETED`
 * (3) from `RecognitionResult.ALREADY_RECOGNIZED` (3) and calls both a success. Here each
 * member is an object of its own enum (it still converts to its number with `+result`
 * or `result.value`), so `succeeded()` is exact. Compare members with `===`.
 *
 * @module
 */

/** One member of {@link (ForceResult:variable)} or {@link (RecognitionResult:variable)}. */
export class ResultMember<TKind extends 'ForceResult' | 'RecognitionResult' = 'ForceResult' | 'RecognitionResult'> {
  /** `'ForceResult'` or `'RecognitionResult'`. */
  readonly kind: TKind;
  /** The member's name, as in Python. */
  readonly name: string;
  /** The member's number, as in Python. */
  readonly value: number;

  /** @internal */
  constructor(kind: TKind, name: string, value: number) {
    this.kind = kind;
    this.name = name;
    this.value = value;
    Object.freeze(this);
  }

  /** The member's number, so that `+member` and comparisons with numbers work. */
  valueOf(): number {
    return this.value;
  }

  /** `Kind.NAME`, for example `ForceResult.RELEASED`. */
  toString(): string {
    return `${this.kind}.${this.name}`;
  }

  /** The same text as `toString()`, so that results read well in logs and replies. */
  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

function members<TKind extends 'ForceResult' | 'RecognitionResult', const TNames extends readonly string[]>(
  kind: TKind,
  names: TNames,
): { readonly [K in TNames[number]]: ResultMember<TKind> } {
  const out: Record<string, ResultMember<TKind>> = {};
  names.forEach((name, i) => (out[name] = new ResultMember(kind, name, i + 1)));
  return Object.freeze(out) as { readonly [K in TNames[number]]: ResultMember<TKind> };
}

/**
 * How a force ended:
 *
 * | member | value | meaning |
 * |---|---|---|
 * | `UNFORCEABLE` | 1 | not recognized, or not held: nothing was done |
 * | `NO_CURRENT_TASK` | 2 | the lock refused the locksmith's release and names no owner to ask |
 * | `OWNER_COMPLETED` | 3 | the owner had already finished without releasing; the lock was freed |
 * | `ALREADY_BEING_FORCED` | 4 | another force of this lock (by this or another locksmith) is in flight |
 * | `FAILURE` | 5 | the owner refused (or raised a critical error a hook chose to absorb) |
 * | `RELEASED_WITH_FALSE` | 6 | the lock's `release()` returned `false` |
 * | `SUCCESS` | 7 | the owner answered the request and gave the lock up |
 * | `RELEASED` | 8 | the locksmith freed the lock itself (no owner to ask, or the owner did not answer in time, raised, or threw the request back) |
 *
 * @example
 * ```ts
 * import { ForceResult, succeeded } from 'statesmith';
 * console.log(+ForceResult.SUCCESS, String(ForceResult.RELEASED)); // 7 ForceResult.RELEASED
 * console.log(succeeded(ForceResult.OWNER_COMPLETED)); // false
 * ```
 */
export const ForceResult = members('ForceResult', [
  'UNFORCEABLE',
  'NO_CURRENT_TASK',
  'OWNER_COMPLETED',
  'ALREADY_BEING_FORCED',
  'FAILURE',
  'RELEASED_WITH_FALSE',
  'SUCCESS',
  'RELEASED',
] as const);
/** A member of {@link (ForceResult:variable)}: the type of what a force resolves to. */
export type ForceResult = ResultMember<'ForceResult'>;

/**
 * How a recognition ended: `FAILED_PRELIM` (not a lock), `FAILED_ACK` (the lock's
 * `acknowledgeLocksmith` said no or threw), `ALREADY_RECOGNIZED`, `SUCCESS`.
 */
export const RecognitionResult = members('RecognitionResult', ['FAILED_PRELIM', 'FAILED_ACK', 'ALREADY_RECOGNIZED', 'SUCCESS'] as const);
/** A member of {@link (RecognitionResult:variable)}: the type of what a recognition resolves to. */
export type RecognitionResult = ResultMember<'RecognitionResult'>;

const FORCE_BY_VALUE: readonly ForceResult[] = Object.values(ForceResult);

/** The ForceResult member numbered `value`. @internal */
export function forceResultOf(value: number): ForceResult {
  const member = FORCE_BY_VALUE[value - 1];
  if (member === undefined) throw new RangeError(`no ForceResult numbered ${value}`);
  return member;
}

/**
 * True when a force freed the lock (`SUCCESS`, `RELEASED`) or a recognition holds
 * (`RecognitionResult.SUCCESS`, `ALREADY_RECOGNIZED`). Unlike the original, bare numbers
 * and `OWNER_COMPLETED` / `ALREADY_BEING_FORCED` are not successes.
 *
 * @example
 * ```ts
 * import { ForceResult, RecognitionResult, succeeded } from 'statesmith';
 * console.log(succeeded(ForceResult.RELEASED), succeeded(RecognitionResult.ALREADY_RECOGNIZED)); // true true
 * console.log(succeeded(ForceResult.ALREADY_BEING_FORCED)); // false
 * ```
 */
export function succeeded(result: ForceResult | RecognitionResult): boolean {
  return (
    result === ForceResult.SUCCESS || result === ForceResult.RELEASED || result === RecognitionResult.SUCCESS || result === RecognitionResult.ALREADY_RECOGNIZED
  );
}

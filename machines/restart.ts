/**
 * What every restart in statesmith shares, pure: a checked restart policy (OTP's restart
 * type and intensity, Akka's back-off) and the delay before restart number n. The task
 * groups (src/tasks/) and the supervisor machine both use it.
 */

/** A checked restart policy, every default filled in. */
export interface RestartSettings {
  /** Which exits restart: `permanent` any, `transient` failures, `temporary` none. */
  readonly type: 'permanent' | 'transient' | 'temporary';
  /** A run that lasted this long (ms) clears the restart history. */
  readonly resetAfterMs: number;
  /** The restart intensity: at most this many restarts within `withinMs`. */
  readonly maxRestarts: number;
  /** The intensity window, in ms. */
  readonly withinMs: number;
  /** The first back-off, in ms. */
  readonly initialMs: number;
  /** The longest back-off, in ms. */
  readonly maxMs: number;
  /** Each further restart within the window multiplies the back-off by this. */
  readonly factor: number;
  /** Adds up to this fraction of the back-off at random. */
  readonly jitter: number;
}

/** The delay before restart number `attempt` (1-based), with `random` in [0, 1): `initialMs · factor^(attempt-1)`, capped, stretched by up to `jitter`. */
export function backoffDelay(settings: RestartSettings, attempt: number, random: number): number {
  const base = Math.min(settings.maxMs, settings.initialMs * settings.factor ** (attempt - 1));
  return Math.min(settings.maxMs, base * (1 + settings.jitter * random));
}

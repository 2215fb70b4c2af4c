/**
 * The one retry schedule: exponential backoff with one jitter formula. Attempt n (0-based) waits
 * min(maxMs, initialMs × 2ⁿ) scaled by a random factor in [1 − jitter, 1], so that many nodes
 * that lost the same DWN or relay do not come back in lock-step, and no wait is ever longer than
 * the cap. jitter 0 gives the plain doubling schedule.
 */
export interface BackoffOptions {
  /** First delay (default 1000 ms). */
  initialMs?: number;
  /** Cap (default 30 000 ms). */
  maxMs?: number;
  /** Fraction of the delay that is randomised, 0–1. Default 0.5: delay × [0.5, 1.0]. */
  jitter?: number;
}

/** Delay before retry `attempt` (0-based). `random` returns a value in [0, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(base * (1 - jitter * random()));
}

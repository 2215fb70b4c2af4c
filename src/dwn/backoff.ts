/**
 * Reconnect delays: start at 1 s, double up to 30 s, with jitter so that many nodes
 * losing the same DWN do not come back in lock-step.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Fraction of the delay that is randomised, 0–1. Default 0.5: delay × [0.5, 1.0]. */
  jitter?: number;
}

/** Delay before reconnect attempt `attempt` (0-based). `random` returns a value in [0, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(base * (1 - jitter * random()));
}

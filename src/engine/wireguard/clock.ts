/**
 * Time for the data plane: an injectable clock (the system's, or a manual one for tests) and
 * the jitter of the handshake timers.
 */
export interface Ticker {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock nanoseconds since the Unix epoch (for TAI64N). */
  wallNanos(): bigint;
  /** Call `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Ticker;
  /** Call `fn` once, `ms` from now, unless cancelled first. */
  after(ms: number, fn: () => void): Ticker;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNanos: () => BigInt(Date.now()) * 1_000_000n,
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return { cancel: () => clearInterval(h) };
  },
  after(ms, fn) {
    const h = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(h) };
  },
};

interface ManualTicker {
  ms: number;
  next: number;
  fn: () => void;
  once: boolean;
}

/** A clock that moves only when told to; tickers fire as time passes over them. */
export class ManualClock implements Clock {
  private t = 0;
  private wall: bigint;
  private readonly tickers = new Set<ManualTicker>();

  constructor(startWallNanos = 1_700_000_000_000_000_000n) {
    this.wall = startWallNanos;
  }

  now(): number {
    return this.t;
  }

  wallNanos(): bigint {
    return this.wall + BigInt(Math.round(this.t * 1e6));
  }

  every(ms: number, fn: () => void): Ticker {
    const entry: ManualTicker = { ms, next: this.t + ms, fn, once: false };
    this.tickers.add(entry);
    return { cancel: () => this.tickers.delete(entry) };
  }

  after(ms: number, fn: () => void): Ticker {
    const entry: ManualTicker = { ms, next: this.t + Math.max(0, ms), fn, once: true };
    this.tickers.add(entry);
    return { cancel: () => this.tickers.delete(entry) };
  }

  /** Move time forward by `ms`, firing tickers at each of their due times in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: ManualTicker | null = null;
      for (const e of this.tickers) if (e.next <= end && (due === null || e.next < due.next)) due = e;
      if (due === null) break;
      this.t = Math.max(this.t, due.next);
      if (due.once) this.tickers.delete(due);
      else due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}

/** Uniform jitter in [0, max) ms. */
export function jitter(max: number): number {
  return Math.random() * max;
}

/**
 * The one clock every component takes by injection: monotonic milliseconds for deadlines and
 * round trips, wall time for timestamps (TAI64N, log lines, "last handshake"), and the two timer
 * shapes (`after`: once, `every`: until cancelled). `systemClock` is the process's; tests drive a
 * `ManualClock` instead so that protocol timers can be stepped without sleeping.
 */

/** A scheduled callback; cancel() is idempotent. */
export interface Ticker {
  cancel(): void;
}

export interface TimerOptions {
  /** Do not keep the process alive for this timer (Node's unref). */
  unref?: boolean;
}

export interface Clock {
  /** Monotonic milliseconds (never jumps with the wall clock). */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch. */
  wallMs(): number;
  /** Wall-clock nanoseconds since the Unix epoch (for TAI64N). */
  wallNanos(): bigint;
  /** Call `fn` once after `ms`. */
  after(ms: number, fn: () => void, opts?: TimerOptions): Ticker;
  /** Call `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void, opts?: TimerOptions): Ticker;
}

/** The process's clock: performance.now, Date.now and Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  wallNanos: () => BigInt(Date.now()) * 1_000_000n,
  after(ms, fn, opts) {
    const h = setTimeout(fn, ms);
    if (opts?.unref) h.unref();
    return { cancel: () => clearTimeout(h) };
  },
  every(ms, fn, opts) {
    const h = setInterval(fn, ms);
    if (opts?.unref) h.unref();
    return { cancel: () => clearInterval(h) };
  },
};

interface ManualTimer {
  ms: number;
  next: number;
  fn: () => void;
  repeat: boolean;
}

/** A clock that moves only when told to; timers fire as time passes over them, in due order. */
export class ManualClock implements Clock {
  private t = 0;
  private readonly wall: bigint;
  private readonly timers = new Set<ManualTimer>();

  constructor(startWallNanos = 1_700_000_000_000_000_000n) {
    this.wall = startWallNanos;
  }

  now(): number {
    return this.t;
  }

  wallNanos(): bigint {
    return this.wall + BigInt(Math.round(this.t * 1e6));
  }

  wallMs(): number {
    return Number(this.wallNanos() / 1_000_000n);
  }

  after(ms: number, fn: () => void): Ticker {
    return this.add({ ms, next: this.t + ms, fn, repeat: false });
  }

  every(ms: number, fn: () => void): Ticker {
    return this.add({ ms, next: this.t + ms, fn, repeat: true });
  }

  private add(entry: ManualTimer): Ticker {
    this.timers.add(entry);
    return { cancel: () => this.timers.delete(entry) };
  }

  /** Move time forward by `ms`, firing timers at each of their due times in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: ManualTimer | null = null;
      for (const e of this.timers) if (e.next <= end && (due === null || e.next < due.next)) due = e;
      if (due === null) break;
      this.t = Math.max(this.t, due.next);
      if (due.repeat) due.next += due.ms;
      else this.timers.delete(due);
      due.fn();
    }
    this.t = end;
  }
}

/** Uniform jitter in [0, max) ms (the handshake retry timers). */
export function jitter(max: number, random: () => number = Math.random): number {
  return random() * max;
}

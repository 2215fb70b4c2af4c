/**
 * Hands the C heap's freed pages back to the kernel a little after the daemon has done a burst
 * of work (start-up, a new network map): decoding records, TLS and HTTP leave freed memory
 * scattered through malloc's heap, which free() keeps resident; glibc's malloc_trim returns it
 * (the native addon's mallocTrim). One trim per quiet moment, on a timer that never keeps the
 * process alive; nothing without the addon.
 */
import { loadNative } from '../engine/native/load.js';

/** How long after the last request to trim: the burst that asked is over by then. */
export const TRIM_DELAY_MS = 2000;

export class HeapTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Trims run, and how many of them released memory. */
  runs = 0;
  released = 0;

  constructor(
    private readonly trim: (() => boolean) | null = defaultTrim(),
    private readonly delayMs = TRIM_DELAY_MS,
  ) {}

  /** Whether trimming is possible here (glibc, the addon built with mallocTrim). */
  get available(): boolean {
    return this.trim !== null;
  }

  /** Trim once the process has been quiet for delayMs (requests in between move it later). */
  soon(): void {
    if (this.stopped || !this.trim) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), this.delayMs);
    this.timer.unref();
  }

  /** Trim now. */
  now(): void {
    this.timer = undefined;
    if (this.stopped || !this.trim) return;
    this.runs++;
    if (this.trim()) this.released++;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** The addon's mallocTrim, or null without the addon (or an addon built before it). */
function defaultTrim(): (() => boolean) | null {
  const addon = loadNative();
  const fn = addon?.mallocTrim;
  return addon && fn ? () => fn.call(addon) : null;
}

/**
 * Gives memory back to the kernel a little after the daemon has done a burst of work (start-up,
 * a new network map): reading and decoding the network's records grows V8's old generation
 * (objects that wait on the network outlive the small young generation the daemon runs with)
 * and leaves freed memory scattered through malloc's heap, and both stay resident long after
 * the burst — V8 shrinks its heap only once it judges the process idle, free() never returns
 * the middle of the heap. So, once the process has been quiet for a moment: a full garbage
 * collection (compacting; V8 then releases the pages it emptied), then glibc's malloc_trim (the
 * native addon's mallocTrim). At most once every MIN_INTERVAL_MS, on timers that never keep the
 * process alive. Work that brings no new map (record events that change nothing) is caught by a
 * look at the resident set once a minute: grown by GROWTH_BYTES since the last trim, trim.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNative } from '../engine/native/load.js';

/** How long after the last request to trim: the burst that asked is over by then. */
export const TRIM_DELAY_MS = 2000;
/** Trims are at least this far apart (a full collection costs a few ms per 10 MiB of heap). */
export const MIN_INTERVAL_MS = 15_000;
/** How often watch() looks at the resident set, and the growth since the last trim that trims. */
export const WATCH_INTERVAL_MS = 60_000;
export const GROWTH_BYTES = 4 * 1024 * 1024;

export interface TrimFunctions {
  /** A full, compacting garbage collection. */
  gc: (() => void) | null;
  /** malloc_trim(0); true when it released memory. */
  mallocTrim: (() => boolean) | null;
}

export class HeapTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private watcher: NodeJS.Timeout | undefined;
  private rssAfter = 0;
  private stopped = false;
  private lastRun = -Infinity;
  /** Trims run, and how many of them released C-heap memory. */
  runs = 0;
  released = 0;

  constructor(
    private readonly fns: TrimFunctions = defaultTrimFunctions(),
    private readonly delayMs = TRIM_DELAY_MS,
    private readonly minIntervalMs = MIN_INTERVAL_MS,
    private readonly rss: () => number = () => process.memoryUsage.rss(),
  ) {}

  /** Whether there is anything to run here. */
  get available(): boolean {
    return this.fns.gc !== null || this.fns.mallocTrim !== null;
  }

  /** Trim once the process has been quiet for delayMs (requests in between move it later). */
  soon(): void {
    if (this.stopped || !this.available) return;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(this.delayMs, this.lastRun + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => this.now(), wait);
    this.timer.unref();
  }

  /** Trim now. */
  now(): void {
    this.timer = undefined;
    if (this.stopped || !this.available) return;
    this.runs++;
    this.lastRun = Date.now();
    this.fns.gc?.();
    if (this.fns.mallocTrim?.()) this.released++;
    this.rssAfter = this.rss();
  }

  /** Every intervalMs: trim soon when the resident set grew by growthBytes since the last trim. */
  watch(intervalMs = WATCH_INTERVAL_MS, growthBytes = GROWTH_BYTES): void {
    if (this.stopped || !this.available || this.watcher) return;
    if (this.rssAfter === 0) this.rssAfter = this.rss();
    this.watcher = setInterval(() => {
      if (this.rss() - this.rssAfter >= growthBytes) this.soon();
    }, intervalMs);
    this.watcher.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watcher) clearInterval(this.watcher);
    this.timer = undefined;
    this.watcher = undefined;
  }
}

/**
 * V8's gc(): the global one when node runs with --expose-gc, else one exposed for this purpose
 * (the flag applies to contexts created after it is set; the process's own is untouched).
 */
function fullGc(): (() => void) | null {
  const g = (globalThis as { gc?: unknown }).gc;
  if (typeof g === 'function') return () => void g();
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? () => void (fn as () => void)() : null;
  } catch {
    return null;
  }
}

/** The full collection, and the addon's mallocTrim (null without the addon, or one built before it). */
export function defaultTrimFunctions(): TrimFunctions {
  const addon = loadNative();
  const fn = addon?.mallocTrim;
  return { gc: fullGc(), mallocTrim: addon && fn ? () => fn.call(addon) : null };
}

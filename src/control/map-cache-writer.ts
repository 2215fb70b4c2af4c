/**
 * Writing the network map cache (local-state.ts) without holding anything back: a map is
 * written after it was handed on, at most once per interval (the newest map wins), and on
 * `flush()` when the client stops. A synced write of the whole map (≈100 KB at 100 peers) on
 * every change had held every device's new map back behind the disk — a hundred devices at once.
 */
import type { NetworkMap } from './netmap.js';
import { writeCachedMap } from './local-state.js';

/** The cache is written at most this often. */
export const CACHE_WRITE_MS = 1000;

export class MapCacheWriter {
  private unsaved: NetworkMap | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly onError: (e: Error) => void,
    private readonly intervalMs = CACHE_WRITE_MS,
  ) {}

  /** Write `m` soon (unless a newer map comes first). */
  save(m: NetworkMap): void {
    this.unsaved = m;
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Write what waits now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const m = this.unsaved;
    this.unsaved = undefined;
    if (!m) return;
    try {
      writeCachedMap(this.dir, m);
    } catch (e) {
      this.onError(e as Error);
    }
  }
}

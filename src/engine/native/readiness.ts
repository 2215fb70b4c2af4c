/**
 * Readiness-driven draining shared by the TUN device and the UDP sockets: the addon's uv_poll
 * watcher calls back when the fd is readable, and the reader drains it in whole batches until a
 * short batch says the kernel queue is empty (or a round limit is hit, so one busy fd cannot
 * starve the event loop: the poll is level-triggered and fires again on the next turn).
 */
import type { PacketBatch } from '../packet-batch.js';
import type { NativeAddon, PollHandle } from './addon.js';

/** Batches drained per readiness callback before yielding to the event loop. */
export const MAX_ROUNDS_PER_WAKEUP = 16;

/** A uv_poll readiness watcher on one fd. Stopping is idempotent; it must stop before the fd closes. */
export class FdWatcher {
  readonly #addon: NativeAddon;
  #handle: PollHandle | null;

  /** onReadable runs on the event loop; onError gets a negative errno if polling fails (then the watcher stops). */
  constructor(addon: NativeAddon, fd: number, onReadable: () => void, onError: (errno: number) => void) {
    this.#addon = addon;
    this.#handle = addon.pollStart(fd, (status: number) => {
      if (status < 0) {
        this.stop();
        onError(status);
        return;
      }
      onReadable();
    });
  }

  get active(): boolean {
    return this.#handle !== null;
  }

  /** Whether this watcher keeps the process alive (default true). */
  setKeepAlive(keep: boolean): void {
    if (this.#handle !== null) this.#addon.pollRef(this.#handle, keep);
  }

  stop(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#addon.pollStop(h);
  }
}

/**
 * Read batches with `read` and hand each non-empty one to `onBatch` (which must finish with the
 * batch before returning: it is reused), until a batch comes back short or `maxRounds` is hit.
 * Returns the number of packets delivered.
 */
export function drainBatches(
  read: (batch: PacketBatch) => number,
  batch: PacketBatch,
  onBatch: (batch: PacketBatch) => void,
  maxRounds = MAX_ROUNDS_PER_WAKEUP,
): number {
  let total = 0;
  for (let round = 0; round < maxRounds; round++) {
    const n = read(batch);
    if (n === 0) break;
    total += n;
    onBatch(batch);
    if (n < batch.capacity) break;
  }
  return total;
}

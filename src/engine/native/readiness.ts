/**
 * Readiness-driven draining shared by the TUN device and the UDP sockets: the addon's uv_poll
 * watcher calls back when the fd is readable, and the reader drains it in whole batches until a
 * short batch says the kernel queue is empty (or a round limit is hit, so one busy fd cannot
 * starve the event loop: the poll is level-triggered and fires again on the next turn).
 */
import type { PacketBatch } from '../packet-batch.js';
import { errnoName, type NativeAddon, type PollHandle } from './addon.js';

/**
 * Batches drained per readiness callback before yielding to the event loop. Few, so that the TUN
 * and the UDP socket take turns: while one fd is drained, what waits on the other (TCP ACKs
 * coming back, a ping) waits too. At 16 batches of 128 (about 3 MB, 10 ms at 2 Gbit/s) the
 * ACKs of a fast TCP stream came back in bursts, BBR took the bursts for ACK aggregation and
 * raised its window to cover them, and the extra megabytes in flight queued in the TUN and
 * the UDP receive buffer ahead of every other flow's packets (ping under load: 6–14 ms at 16
 * rounds, 4–7 ms at 2, same throughput). Each extra turn costs one epoll_wait.
 */
export const MAX_ROUNDS_PER_WAKEUP = 2;

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

/** The counters a batched fd reader and writer keep (TunStats and UdpStats both have them). */
export interface FdBatchStats {
  rxErrors: number;
  txPackets: number;
  txDropped: number;
  txErrors: number;
  lastError: string | null;
}

/**
 * The reading side of a TUN device or UDP socket: at most one watcher on its fd, draining it
 * batch by batch while the owner is open, polling errors counted in the owner's stats, and
 * whether it keeps the process alive.
 */
export class FdBatchReader {
  readonly #addon: NativeAddon;
  readonly #stats: FdBatchStats;
  #watcher: FdWatcher | null = null;
  #keepAlive = true;
  /** A drain of held packets is scheduled (setImmediate), or null. */
  #again: NodeJS.Immediate | null = null;

  constructor(addon: NativeAddon, stats: FdBatchStats) {
    this.#addon = addon;
    this.#stats = stats;
  }

  /**
   * Replace any running watcher with one on fd: whenever it is readable and isOpen() holds,
   * drain it with `read` into `batch` and hand each non-empty batch to onBatch. `held` says
   * whether the reader still holds packets outside the kernel (a cut super-segment): the fd
   * would not wake us for those, so the drain goes on at the next turn of the event loop.
   */
  start(
    fd: number,
    read: (batch: PacketBatch) => number,
    isOpen: () => boolean,
    batch: PacketBatch,
    onBatch: (batch: PacketBatch) => void,
    held: () => boolean = () => false,
  ): void {
    this.stop();
    const drain = (): void => {
      if (this.#again !== null) clearImmediate(this.#again); // draining now: one chain at most
      this.#again = null;
      if (!isOpen() || this.#watcher === null) return;
      drainBatches(read, batch, onBatch);
      if (held() && this.#again === null) {
        this.#again = setImmediate(drain);
        if (!this.#keepAlive) this.#again.unref();
      }
    };
    this.#watcher = new FdWatcher(
      this.#addon,
      fd,
      drain,
      (errno) => {
        this.#stats.rxErrors++;
        this.#stats.lastError = errnoName(-errno);
      },
    );
    if (!this.#keepAlive) this.#watcher.setKeepAlive(false);
  }

  stop(): void {
    if (this.#again !== null) clearImmediate(this.#again);
    this.#again = null;
    this.#watcher?.stop();
    this.#watcher = null;
  }

  /** Whether a running watcher keeps the process alive (default true; remembered for the next). */
  setKeepAlive(keep: boolean): void {
    this.#keepAlive = keep;
    this.#watcher?.setKeepAlive(keep);
  }
}

/**
 * Add one batched write to stats: `written` packets went out; result holds the addon's
 * [n, dropped (queue full), refused, last errno].
 */
export function countBatchWrite(stats: FdBatchStats, written: number, result: Int32Array): void {
  stats.txPackets += written;
  if (result[1] !== 0) stats.txDropped += result[1]!;
  if (result[2] !== 0) {
    stats.txErrors += result[2]!;
    stats.lastError = errnoName(result[3]!);
  }
}

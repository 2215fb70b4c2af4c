/**
 * When a device re-writes its own records (nodeInfo, endpoint) under a new network key.
 *
 * After a key rotation every device's nodeInfo and endpoint must come under the new epoch
 * before readers stop taking the previous one for device-written records
 * (DEVICE_EPOCH_GRACE_MS in epochs.ts). Nothing is gained by hurrying: those records hold what
 * the removed device could already read before its removal, and anything written from now on
 * is under the new key. What hurrying costs was measured: at 100 devices the owner re-writes
 * ~100 node records in the same minute, and every device reading them while ~200 device
 * re-writes land too saturated a small machine and starved the DWN (the owner's `peer remove`
 * timed out). So each device waits a random time spread over minutes: the endpoint's next
 * heartbeat comes under the new key by itself (the heartbeat re-writes it when it is under an
 * older epoch), and what is still under the old key when the wait ends is re-written then.
 */

/** The window over which devices spread their re-writes after a rotation (default). */
export const OWN_REENCRYPT_WITHIN_MS = 6 * 60_000;
/** No device writes in the first part of the window (the owner's own re-writes happen then). */
const EARLIEST_SHARE = 0.2;

export interface OwnReencryptionOptions {
  /** The window: each device waits uniformly in [0.2, 1] × this (default OWN_REENCRYPT_WITHIN_MS). */
  withinMs?: number;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** The wait ended: look again (the caller runs a refresh, which asks `due`). */
  onDue: () => void;
}

export class OwnReencryption {
  /** The epoch this device's own records are known to be under. */
  private doneEpoch: number | undefined;
  /** The epoch a wait runs for, and whether it has ended. */
  private waitingEpoch: number | undefined;
  private waitOver = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly withinMs: number;
  private readonly random: () => number;

  constructor(
    initialEpoch: number | undefined,
    private readonly opts: OwnReencryptionOptions,
  ) {
    this.doneEpoch = initialEpoch;
    this.withinMs = opts.withinMs ?? OWN_REENCRYPT_WITHIN_MS;
    this.random = opts.random ?? Math.random;
  }

  /**
   * Should the device re-write its own records for `epoch` now (they are under an older one)?
   * The first time an epoch is asked about, this device's wait starts.
   */
  due(epoch: number): boolean {
    if (epoch === this.doneEpoch) return false;
    if (this.waitingEpoch !== epoch) {
      this.waitingEpoch = epoch;
      this.waitOver = false;
      clearTimeout(this.timer);
      const wait = Math.floor(this.withinMs * (EARLIEST_SHARE + (1 - EARLIEST_SHARE) * this.random()));
      this.timer = setTimeout(() => {
        this.waitOver = true;
        this.opts.onDue();
      }, wait);
      this.timer.unref();
      return false;
    }
    return this.waitOver;
  }

  /** The own records are under `epoch` now (written, or found so). */
  done(epoch: number): void {
    this.doneEpoch = epoch;
    if (this.waitingEpoch !== undefined && this.waitingEpoch <= epoch) this.stop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waitingEpoch = undefined;
    this.waitOver = false;
  }
}

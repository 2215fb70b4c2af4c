/**
 * When a device re-writes its own records (nodeInfo, endpoint) under a new network key.
 *
 * After a key rotation every device must re-write its two records under the new epoch. Done the
 * moment the new network record arrives, all N devices write at once, on top of the owner's N
 * re-encrypted node records: at 100 devices that is ~300 writes in the same seconds, each fanned
 * out to every subscriber, and the DWN stops answering in time. So a device waits until the
 * owner's re-encryption reached its own node record — the owner re-writes them a few at a time,
 * which paces the devices' writes by the owner's progress — or, if that does not come (an owner
 * that stopped mid-rotation), until a fallback wait with jitter has passed. Both stay well inside
 * the grace during which readers still take the previous epoch (EPOCH_GRACE_MS).
 */

/** Longest wait for the owner's re-write of this device's node record before writing anyway. */
export const OWN_REENCRYPT_FALLBACK_MS = 20_000;
/** Spread of the fallback over devices (uniform jitter added to it). */
export const OWN_REENCRYPT_JITTER_MS = 15_000;

export interface OwnReencryptionOptions {
  fallbackMs?: number;
  jitterMs?: number;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** The fallback wait ended: look again (the caller runs a refresh, which asks `due`). */
  onFallback: () => void;
}

export class OwnReencryption {
  /** The epoch this device's own records are known to be under. */
  private doneEpoch: number | undefined;
  /** The epoch a fallback timer runs for, and whether it has fired. */
  private waitingEpoch: number | undefined;
  private fallbackPassed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly fallbackMs: number;
  private readonly jitterMs: number;
  private readonly random: () => number;

  constructor(
    initialEpoch: number | undefined,
    private readonly opts: OwnReencryptionOptions,
  ) {
    this.doneEpoch = initialEpoch;
    this.fallbackMs = opts.fallbackMs ?? OWN_REENCRYPT_FALLBACK_MS;
    this.jitterMs = opts.jitterMs ?? OWN_REENCRYPT_JITTER_MS;
    this.random = opts.random ?? Math.random;
  }

  /**
   * Should the device re-write its own records for `epoch` now? `ownNodeEpoch` is the epoch of
   * its own node record as read (the owner's re-write of it carries the new one). The first
   * time an epoch is seen without that, the fallback timer starts.
   */
  due(epoch: number, ownNodeEpoch: number | undefined): boolean {
    if (epoch === this.doneEpoch) return false;
    if (ownNodeEpoch !== undefined && ownNodeEpoch >= epoch) return true;
    if (this.waitingEpoch !== epoch) {
      this.waitingEpoch = epoch;
      this.fallbackPassed = false;
      clearTimeout(this.timer);
      this.timer = setTimeout(
        () => {
          this.fallbackPassed = true;
          this.opts.onFallback();
        },
        this.fallbackMs + Math.floor(this.random() * this.jitterMs),
      );
      return false;
    }
    return this.fallbackPassed;
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
    this.fallbackPassed = false;
  }
}

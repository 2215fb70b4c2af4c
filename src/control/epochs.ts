/**
 * Monotonic network-key epochs. The network record names the current epoch; a device never
 * goes back to a lower one (the highest it accepted is kept on disk), and it accepts
 * member-readable records only under the current epoch's key — or, for a short grace after a
 * rotation, the previous one, so the map does not blank while devices re-encrypt.
 */
import { readEpochFloor, writeEpochFloor } from './local-state.js';

/** How long records under the previous epoch stay acceptable after a rotation is seen. */
export const EPOCH_GRACE_MS = 60_000;

export class EpochGuard {
  private floor: number;
  private current: number | undefined;
  private currentSince = 0;

  constructor(
    private readonly profileDir: string | undefined,
    private readonly networkId: string,
    private readonly graceMs = EPOCH_GRACE_MS,
  ) {
    this.floor = profileDir === undefined ? 0 : readEpochFloor(profileDir, networkId);
  }

  /** The highest epoch ever accepted (persisted). */
  get highest(): number {
    return this.floor;
  }

  /** The epoch in force, once a network record was accepted. */
  get epoch(): number | undefined {
    return this.current;
  }

  /** Would a network record naming `epoch` be accepted (not a rollback)? */
  admits(epoch: number): boolean {
    return epoch >= this.floor;
  }

  /** A network record naming `epoch` was accepted; returns true when the epoch moved up. */
  accept(epoch: number, now: number): boolean {
    if (epoch < this.floor) return false;
    const moved = this.current === undefined || epoch > this.current;
    if (this.current !== undefined && epoch > this.current) this.currentSince = now;
    if (this.current === undefined || epoch > this.current) this.current = epoch;
    if (epoch > this.floor) {
      this.floor = epoch;
      if (this.profileDir !== undefined) writeEpochFloor(this.profileDir, this.networkId, epoch);
    }
    return moved;
  }

  /** May a member-readable record under `epoch` be used now? */
  usable(epoch: number | undefined, now: number): boolean {
    if (epoch === undefined || this.current === undefined) return false;
    if (epoch === this.current) return true;
    return epoch === this.current - 1 && now - this.currentSince < this.graceMs;
  }
}

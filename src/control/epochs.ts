/**
 * Monotonic network-key epochs. The network record names the current epoch; a device never
 * goes back to a lower one (the highest it accepted is kept on disk), and it accepts
 * member-readable records only under the current epoch's key — or, for a grace after a
 * rotation, the previous one, so the map does not blank while the owner and the devices
 * re-encrypt.
 *
 * A record under the next epoch is taken too: the owner re-writes its records under the new key
 * before the network record names it (key-rotation.ts), and only those the owner delivered that
 * key to can hold it. The owner's records (node, member, policy, relay) get a short grace after
 * the network record moved: they are under the new key by then, and a node record left under
 * the old key — one the DWN operator keeps serving after the owner deleted it, say — must stop
 * counting soon. A device's own
 * nodeInfo and endpoint get a longer one: devices re-write them spread over minutes
 * (own-reencryption.ts), and they count only while their device's node record does, so an old
 * one gives nobody a place in the map.
 */
import type { RecordKind } from './protocol.js';
import { readEpochFloor, writeEpochFloor } from './local-state.js';

/** How long the owner's records under the previous epoch stay acceptable after a rotation is seen. */
export const EPOCH_GRACE_MS = 60_000;
/** The same for a device's own nodeInfo and endpoint (well past own-reencryption's window and a heartbeat). */
export const DEVICE_EPOCH_GRACE_MS = 15 * 60_000;
/** The records a device writes about itself. */
const DEVICE_WRITTEN: ReadonlySet<RecordKind> = new Set<RecordKind>(['nodeInfo', 'endpoint']);

export class EpochGuard {
  private floor: number;
  private current: number | undefined;
  private currentSince = 0;

  constructor(
    private readonly profileDir: string | undefined,
    private readonly networkId: string,
    private readonly graceMs = EPOCH_GRACE_MS,
    private readonly deviceGraceMs = DEVICE_EPOCH_GRACE_MS,
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

  /** May a member-readable record of `kind` under `epoch` be used now? */
  usable(epoch: number | undefined, now: number, kind: RecordKind): boolean {
    if (epoch === undefined || this.current === undefined) return false;
    if (epoch === this.current) return true;
    // the owner re-writes its records under the next epoch before the network record names it;
    // a reader holds that key only when the owner delivered it (records are opened with it)
    if (epoch === this.current + 1) return true;
    const grace = DEVICE_WRITTEN.has(kind) ? this.deviceGraceMs : this.graceMs;
    return epoch === this.current - 1 && now - this.currentSince < grace;
  }
}

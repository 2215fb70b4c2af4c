/**
 * What the owner's daemon does besides keeping its map: revoke devices whose `expiresAt` has come
 * (tombstone, key rotation, records deleted), and admit devices that ask to join with a valid
 * invite. Owner-only operations are loaded on first use, by the owner's daemon alone.
 */
import type { ControlEvent } from './control-client-types.js';
import { nodeRecords } from './model.js';
import { readableKinds } from './reader.js';
import type { NetworkSession } from './session.js';

/** Delay after an expiry time before the owner revokes (clock skew between machines). */
const EXPIRY_SLACK_MS = 1000;
/** First wait before finishing a rotation that was cut short (the DWN was overloaded), doubled per failure up to the max. */
const FINISH_ROTATION_MS = 10_000;
const FINISH_ROTATION_MAX_MS = 5 * 60_000;

/** What the duties need of the control client that runs them. */
export interface OwnerDutiesHost {
  readonly session: NetworkSession;
  now(): number;
  /** Run `fn` in turn with the client's refreshes and operations. */
  inTurn(fn: () => Promise<void>): void;
  emit(e: ControlEvent): void;
  rebuild(): void;
}

export class OwnerDuties {
  /** Devices revoked because they expired. */
  expiredCount = 0;
  /** Key rotations this daemon finished (run in the background after `peer remove`, or cut short before). */
  finishedRotations = 0;
  /** What is left of a key rotation, as last seen (null: nothing). */
  rotationLeft: { bump: boolean; rewrites: number; deletions: number } | null = null;
  private expiryTimer: NodeJS.Timeout | undefined;
  private finishTimer: NodeJS.Timeout | undefined;
  private finishWaitMs = FINISH_ROTATION_MS;
  private stopped = false;
  /** Join requests left waiting for `peer approve`, reported once. */
  private readonly notedJoins = new Set<string>();

  constructor(private readonly host: OwnerDutiesHost) {}

  /** Arm one timer for the earliest `expiresAt` among active devices. */
  scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    if (this.stopped) return;
    const s = this.host.session;
    let next = Infinity;
    for (const n of nodeRecords(s.set, s.joined.networkId, s.joined.anchor)) {
      if (n.data.status !== 'active' || n.data.expiresAt === undefined) continue;
      const at = Date.parse(n.data.expiresAt);
      if (Number.isFinite(at) && at < next) next = at;
    }
    if (next === Infinity) return;
    const wait = Math.min(2 ** 31 - 1, Math.max(0, next + EXPIRY_SLACK_MS - this.host.now()));
    this.expiryTimer = setTimeout(() => this.host.inTurn(() => this.revokeExpired()), wait);
    this.expiryTimer.unref();
  }

  /** Admit the devices that asked to join with a valid invite (after a refresh saw requests). */
  async admitJoins(): Promise<void> {
    try {
      const { admitJoinRequests } = await import('./invite-ops.js');
      const results = await admitJoinRequests(this.host.session, this.host.now(), this.notedJoins);
      if (results.length > 0) {
        this.host.emit({ type: 'admission', results });
        if (results.some((r) => r.admitted)) this.host.rebuild();
      }
    } catch (e) {
      this.host.emit({ type: 'error', error: e as Error, during: 'admitting invited devices' });
    }
  }

  /**
   * After a refresh: when a key rotation was cut short (records of revoked identities still
   * there, the owner's records under an older epoch, a revoked identity still holding the current
   * key), finish it after a wait — a `peer remove` the DWN stopped answering must not leave the
   * network half rotated.
   */
  async checkRotation(): Promise<void> {
    if (this.stopped) return;
    const { unfinishedRotation } = await import('./key-rotation.js');
    let left;
    try {
      left = unfinishedRotation(this.host.session);
    } catch (e) {
      this.host.emit({ type: 'error', error: e as Error, during: 'checking for a key rotation cut short' });
      return;
    }
    this.rotationLeft = left ?? null;
    if (!left) {
      this.finishWaitMs = FINISH_ROTATION_MS;
      return;
    }
    if (this.finishTimer) return;
    this.finishTimer = setTimeout(() => this.host.inTurn(() => this.finishRotation()), this.finishWaitMs);
    this.finishTimer.unref();
  }

  /** Run what is left of a key rotation next, in turn (after a `peer remove` that only revoked). */
  finishNow(): void {
    if (this.stopped) return;
    clearTimeout(this.finishTimer);
    this.finishTimer = setTimeout(() => this.host.inTurn(() => this.finishRotation()), 0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.expiryTimer);
    clearTimeout(this.finishTimer);
  }

  private async finishRotation(): Promise<void> {
    this.finishTimer = undefined;
    if (this.stopped) return;
    const s = this.host.session;
    try {
      const { finishRotation } = await import('./key-rotation.js');
      if (await finishRotation(s)) {
        this.finishedRotations++;
        this.host.rebuild();
      }
      this.finishWaitMs = FINISH_ROTATION_MS;
    } catch (e) {
      this.finishWaitMs = Math.min(FINISH_ROTATION_MAX_MS, this.finishWaitMs * 2);
      this.host.emit({ type: 'error', error: e as Error, during: 'finishing a key rotation that was cut short' });
    }
    await this.checkRotation();
  }

  private async revokeExpired(): Promise<void> {
    if (this.stopped) return;
    const s = this.host.session;
    const now = this.host.now();
    const due = nodeRecords(s.set, s.joined.networkId, s.joined.anchor)
      .filter((n) => n.data.status === 'active' && n.data.expiresAt !== undefined && Date.parse(n.data.expiresAt) <= now)
      .map((n) => n.data.did);
    try {
      if (due.length > 0) {
        await s.load(readableKinds(s.role));
        const { revoke } = await import('./key-rotation.js');
        await revoke(s, due, []);
        this.expiredCount += due.length;
        this.host.emit({ type: 'expired', dids: due });
        this.host.rebuild();
      }
    } catch (e) {
      this.host.emit({ type: 'error', error: e as Error, during: 'revoking expired devices' });
    }
    this.scheduleExpiry();
  }
}

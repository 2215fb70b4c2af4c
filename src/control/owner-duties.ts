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
  private expiryTimer: NodeJS.Timeout | undefined;
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

  stop(): void {
    this.stopped = true;
    clearTimeout(this.expiryTimer);
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
        const { revoke } = await import('./peer-ops.js');
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

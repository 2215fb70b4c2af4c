/**
 * A keypair is one session's transport keys with its send counter and receive replay window.
 * Each peer holds up to three: `current` (used to send), `previous` (still accepted for a while
 * after a rekey) and `next` (derived as responder, promoted to current once the initiator proves
 * it has it by sending with it). keypair-rotation.ts moves keypairs between those slots.
 */
import { ReplayFilter } from './replay.js';
import type { SessionKeys } from './noise.js';

export class Keypair<P = unknown> {
  readonly sendKey: Buffer;
  readonly receiveKey: Buffer;
  readonly isInitiator: boolean;
  readonly localIndex: number;
  readonly remoteIndex: number;
  /** Monotonic ms at derivation. */
  readonly created: number;
  readonly replay = new ReplayFilter();
  /** Next counter to send with. */
  sendCounter = 0;
  /** Where this keypair's key sits in the device's per-batch key table (valid while epoch matches). */
  sealEpoch = 0;
  sealKeyIndex = 0;
  openEpoch = 0;
  openKeyIndex = 0;

  constructor(
    keys: SessionKeys,
    created: number,
    readonly peer: P,
  ) {
    this.sendKey = Buffer.from(keys.sendKey);
    this.receiveKey = Buffer.from(keys.receiveKey);
    this.isInitiator = keys.isInitiator;
    this.localIndex = keys.localIndex;
    this.remoteIndex = keys.remoteIndex;
    this.created = created;
  }

  /** Wipe the key material (after the keypair left every slot). */
  destroy(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}

export class Keypairs<P = unknown> {
  current: Keypair<P> | null = null;
  previous: Keypair<P> | null = null;
  next: Keypair<P> | null = null;

  all(): Array<Keypair<P>> {
    const out: Array<Keypair<P>> = [];
    if (this.current) out.push(this.current);
    if (this.previous) out.push(this.previous);
    if (this.next) out.push(this.next);
    return out;
  }
}

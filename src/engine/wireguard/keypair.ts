/**
 * A keypair is one session's transport keys with its send counter and receive replay window.
 * Each peer holds up to three: `current` (used to send), `previous` (still accepted for a while
 * after a rekey) and `next` (derived as responder, promoted to current once the initiator proves
 * it has it by sending with it). The rotation between those slots is here too, as wireguard-go
 * does it in BeginSymmetricSession and ReceivedWithKeypair.
 */
import { ReplayFilter } from './replay.js';
import { deriveSession, type SessionKeys } from './noise.js';
import type { DeviceState } from './device-state.js';
import type { Peer } from './peer.js';

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

// ---------------------------------------------------------------- rotation

/** Derive the session from the finished handshake and rotate the peer's keypairs. */
export function beginSymmetricSession(dev: DeviceState, peer: Peer, now: number): boolean {
  const hs = peer.handshake;
  const keys = deriveSession(hs);
  if (keys === null) return false;
  const kp = new Keypair<Peer>(keys, now, peer);
  dev.index.attachKeypair(keys.localIndex, kp);
  hs.localIndex = 0;
  const kps = peer.keypairs;
  const { previous, next, current } = kps;
  if (kp.isInitiator) {
    if (next !== null) {
      kps.next = null;
      kps.previous = next;
      deleteKeypair(dev, current);
    } else {
      kps.previous = current;
    }
    deleteKeypair(dev, previous);
    kps.current = kp;
  } else {
    kps.next = kp;
    deleteKeypair(dev, next);
    kps.previous = null;
    deleteKeypair(dev, previous);
  }
  return true;
}

/** Take a keypair out of the index table and wipe its keys. */
export function deleteKeypair(dev: DeviceState, kp: Keypair<Peer> | null): void {
  if (kp === null) return;
  dev.index.delete(kp.localIndex);
  kp.destroy();
}

/**
 * The responder's `next` keypair is confirmed by the first packet that arrives under it.
 * True when this packet promoted it (the handshake is complete for the responder).
 */
export function receivedWithKeypair(dev: DeviceState, peer: Peer, kp: Keypair<Peer>): boolean {
  const kps = peer.keypairs;
  if (kps.next !== kp) return false;
  const old = kps.previous;
  kps.previous = kps.current;
  deleteKeypair(dev, old);
  kps.current = kp;
  kps.next = null;
  return true;
}

/** Forget every keypair and the handshake in progress (identity change, removal, key expiry). */
export function zeroKeys(dev: DeviceState, peer: Peer, notify: boolean): void {
  const kps = peer.keypairs;
  deleteKeypair(dev, kps.current);
  deleteKeypair(dev, kps.previous);
  deleteKeypair(dev, kps.next);
  kps.current = kps.previous = kps.next = null;
  dev.index.delete(peer.handshake.localIndex);
  peer.handshake.localIndex = 0;
  peer.handshake.clear();
  if (notify) dev.onEvent({ type: 'keys-zeroed', peer: peer.publicKeyBase64 });
}

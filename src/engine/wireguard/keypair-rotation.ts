/**
 * Keypair rotation: a finished handshake derives a keypair that becomes `current` (initiator)
 * or `next` (responder, promoted by the first packet that arrives under it), pushing the old one
 * to `previous`; keypairs that leave every slot leave the index table and are wiped. As
 * wireguard-go does it in BeginSymmetricSession, ReceivedWithKeypair and ZeroAndFlushAll.
 */
import type { DeviceState } from './device-state.js';
import { Keypair } from './keypair.js';
import { deriveSession } from './noise.js';
import type { Peer } from './peer.js';

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

/**
 * The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard uses it (paper section
 * 5.4.2–5.4.5). One Handshake object per peer holds the in-progress state; the functions here
 * create and consume initiation and response messages and derive the transport keys. Randomness
 * (ephemeral keys) and time (TAI64N) are passed in so that known-answer tests are possible.
 * Mac fields are left zero here; cookie.ts fills and checks them.
 */
import type { KeyObject } from 'node:crypto';
import { CONSTRUCTION, IDENTIFIER } from './constants.js';
import { copyBytes, encodeInitiation, encodeResponse, INITIATION, RESPONSE, readU32LE } from './messages.js';
import {
  aeadOpen,
  aeadSeal,
  compareBytes,
  dh,
  hash,
  kdf1,
  kdf2,
  kdf3,
  privateKeyObject,
  publicKeyOf,
} from './noise-crypto.js';

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** C = HASH(CONSTRUCTION), H = HASH(C ‖ IDENTIFIER). */
export const INITIAL_CHAIN_KEY = hash(enc.encode(CONSTRUCTION));
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, enc.encode(IDENTIFIER));

export interface StaticIdentity {
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
}

export function staticIdentity(privateKey: Uint8Array): StaticIdentity {
  const k = privateKeyObject(privateKey);
  return { privateKey: k, publicKey: publicKeyOf(k) };
}

export type HandshakeState = 'zeroed' | 'initiation-created' | 'initiation-consumed' | 'response-created' | 'response-consumed';

/** Per-peer handshake state. */
export class Handshake {
  state: HandshakeState = 'zeroed';
  hash: Uint8Array = INITIAL_HASH;
  chainKey: Uint8Array = INITIAL_CHAIN_KEY;
  localEphemeral: KeyObject | null = null;
  localIndex = 0;
  remoteIndex = 0;
  remoteEphemeral: Uint8Array | null = null;
  /** DH(our static private, peer static public); null when the peer key is a low-order point. */
  precomputedStaticStatic: Uint8Array | null = null;
  presharedKey: Uint8Array = new Uint8Array(32);
  /** Greatest TAI64N timestamp accepted from this peer (replayed initiations are rejected). */
  lastTimestamp: Uint8Array = new Uint8Array(12);
  /** Monotonic ms of the last initiation we consumed (flood guard). */
  lastInitiationConsumption = -Infinity;
  /** Monotonic ms of the last initiation we sent (at most one per REKEY_TIMEOUT). */
  lastSentHandshake = -Infinity;

  constructor(readonly remoteStatic: Uint8Array) {}

  /** Recompute DH(static, static) after our private key or the peer's key changed. */
  precompute(identity: StaticIdentity | null): void {
    this.precomputedStaticStatic = identity === null ? null : dh(identity.privateKey, this.remoteStatic);
  }

  clear(): void {
    this.state = 'zeroed';
    this.hash = INITIAL_HASH;
    this.chainKey = INITIAL_CHAIN_KEY;
    this.localEphemeral = null;
    this.remoteEphemeral = null;
  }
}

/**
 * Initiator: build message 1 (mac1/mac2 zero). `ephemeralPrivate` is 32 random bytes (clamped
 * by X25519), `timestamp` the 12-byte TAI64N. Sets hs.state = 'initiation-created'.
 */
export function createInitiation(
  identity: StaticIdentity,
  hs: Handshake,
  ephemeralPrivate: Uint8Array,
  timestamp: Uint8Array,
  localIndex: number,
): Uint8Array | null {
  if (hs.precomputedStaticStatic === null) return null;
  const eph = privateKeyObject(ephemeralPrivate);
  const ephPub = publicKeyOf(eph);
  let h = hash(INITIAL_HASH, hs.remoteStatic);
  let c = kdf1(INITIAL_CHAIN_KEY, ephPub);
  h = hash(h, ephPub);
  const es = dh(eph, hs.remoteStatic);
  if (es === null) return null;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const encryptedStatic = aeadSeal(k, 0, identity.publicKey, h);
  h = hash(h, encryptedStatic);
  [c, k] = kdf2(c, hs.precomputedStaticStatic);
  const encryptedTimestamp = aeadSeal(k, 0, timestamp, h);
  h = hash(h, encryptedTimestamp);

  hs.hash = h;
  hs.chainKey = c;
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.state = 'initiation-created';
  return encodeInitiation({
    sender: localIndex,
    ephemeral: ephPub,
    encryptedStatic,
    encryptedTimestamp,
    mac1: new Uint8Array(16),
    mac2: new Uint8Array(16),
  });
}

/** What the first half of consuming an initiation learns before the peer is known. */
export interface InitiationOpened {
  readonly peerPublic: Uint8Array;
  readonly hash: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly ephemeral: Uint8Array;
  readonly sender: number;
}

/** Responder, step 1: decrypt the initiator's static key. Null when it does not authenticate. */
export function openInitiation(identity: StaticIdentity, msg: Uint8Array): InitiationOpened | null {
  const ephemeral = copyBytes(msg, INITIATION.ephemeral, INITIATION.ephemeral + 32);
  let h = hash(INITIAL_HASH, identity.publicKey);
  h = hash(h, ephemeral);
  const es = dh(identity.privateKey, ephemeral);
  if (es === null) return null;
  const [c, k] = kdf2(kdf1(INITIAL_CHAIN_KEY, ephemeral), es);
  const encryptedStatic = msg.subarray(INITIATION.static, INITIATION.static + 48);
  const peerPublic = aeadOpen(k, 0, encryptedStatic, h);
  if (peerPublic === null) return null;
  h = hash(h, encryptedStatic);
  return { peerPublic, hash: h, chainKey: c, ephemeral, sender: readU32LE(msg, INITIATION.sender) };
}

export type ConsumeInitiationResult = 'ok' | 'bad-timestamp' | 'replay' | 'flood' | 'bad-peer';

/**
 * Responder, step 2, with the peer's handshake: decrypt and check the timestamp (must be newer
 * than any accepted before) and the flood guard, then store the state. `now` is monotonic ms.
 */
export function consumeInitiation(
  opened: InitiationOpened,
  msg: Uint8Array,
  hs: Handshake,
  now: number,
  floodInterval: number,
): ConsumeInitiationResult {
  if (hs.precomputedStaticStatic === null) return 'bad-peer';
  const [c, k] = kdf2(opened.chainKey, hs.precomputedStaticStatic);
  const encryptedTimestamp = msg.subarray(INITIATION.timestamp, INITIATION.timestamp + 28);
  const timestamp = aeadOpen(k, 0, encryptedTimestamp, opened.hash);
  if (timestamp === null) return 'bad-timestamp';
  const h = hash(opened.hash, encryptedTimestamp);
  if (compareBytes(timestamp, hs.lastTimestamp) <= 0) return 'replay';
  if (now - hs.lastInitiationConsumption <= floodInterval) return 'flood';

  hs.hash = h;
  hs.chainKey = c;
  hs.remoteIndex = opened.sender;
  hs.remoteEphemeral = opened.ephemeral;
  hs.lastTimestamp = timestamp;
  hs.lastInitiationConsumption = now;
  hs.state = 'initiation-consumed';
  return 'ok';
}

/** Responder: build message 2 (mac1/mac2 zero). Sets hs.state = 'response-created'. */
export function createResponse(hs: Handshake, ephemeralPrivate: Uint8Array, localIndex: number): Uint8Array | null {
  if (hs.state !== 'initiation-consumed' || hs.remoteEphemeral === null) return null;
  const eph = privateKeyObject(ephemeralPrivate);
  const ephPub = publicKeyOf(eph);
  let h = hash(hs.hash, ephPub);
  let c = kdf1(hs.chainKey, ephPub);
  const ee = dh(eph, hs.remoteEphemeral);
  const se = dh(eph, hs.remoteStatic);
  if (ee === null || se === null) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, hs.presharedKey);
  h = hash(h, tau);
  const encryptedNothing = aeadSeal(k, 0, EMPTY, h);
  h = hash(h, encryptedNothing);

  hs.hash = h;
  hs.chainKey = c2;
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.state = 'response-created';
  return encodeResponse({
    sender: localIndex,
    receiver: hs.remoteIndex,
    ephemeral: ephPub,
    encryptedNothing,
    mac1: new Uint8Array(16),
    mac2: new Uint8Array(16),
  });
}

/** Initiator: consume message 2 for the handshake it answers. False when it does not authenticate. */
export function consumeResponse(identity: StaticIdentity, hs: Handshake, msg: Uint8Array): boolean {
  if (hs.state !== 'initiation-created' || hs.localEphemeral === null) return false;
  const ephemeral = msg.subarray(RESPONSE.ephemeral, RESPONSE.ephemeral + 32);
  let h = hash(hs.hash, ephemeral);
  let c = kdf1(hs.chainKey, ephemeral);
  const ee = dh(hs.localEphemeral, ephemeral);
  const se = dh(identity.privateKey, ephemeral);
  if (ee === null || se === null) return false;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, hs.presharedKey);
  h = hash(h, tau);
  const encryptedNothing = msg.subarray(RESPONSE.empty, RESPONSE.empty + 16);
  if (aeadOpen(k, 0, encryptedNothing, h) === null) return false;
  h = hash(h, encryptedNothing);

  hs.hash = h;
  hs.chainKey = c2;
  hs.remoteIndex = readU32LE(msg, RESPONSE.sender);
  hs.state = 'response-consumed';
  return true;
}

export interface SessionKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly isInitiator: boolean;
  readonly localIndex: number;
  readonly remoteIndex: number;
}

/** (T_send, T_recv) = KDF2(C, ε) for the initiator, swapped for the responder; zeroes the handshake. */
export function deriveSession(hs: Handshake): SessionKeys | null {
  let keys: SessionKeys;
  if (hs.state === 'response-consumed') {
    const [a, b] = kdf2(hs.chainKey, EMPTY);
    keys = { sendKey: a, receiveKey: b, isInitiator: true, localIndex: hs.localIndex, remoteIndex: hs.remoteIndex };
  } else if (hs.state === 'response-created') {
    const [a, b] = kdf2(hs.chainKey, EMPTY);
    keys = { sendKey: b, receiveKey: a, isInitiator: false, localIndex: hs.localIndex, remoteIndex: hs.remoteIndex };
  } else {
    return null;
  }
  hs.clear();
  return keys;
}

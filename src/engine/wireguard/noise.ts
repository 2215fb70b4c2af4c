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

/** The symmetric state before the first message: chaining key and transcript hash. */
export interface NoiseStart {
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/**
 * Noise's InitializeSymmetric + MixHash(prologue): h = HASH(name) (the name is longer than 32
 * bytes), ck = h, h = HASH(h ‖ prologue). WireGuard's is the protocol name CONSTRUCTION with
 * the prologue IDENTIFIER; the Noise test vectors use other prologues.
 */
export function noiseStart(protocolName: string, prologue: Uint8Array): NoiseStart {
  const name = enc.encode(protocolName);
  if (name.length <= 32) throw new RangeError('a protocol name of 32 bytes or less is padded, not hashed (not IKpsk2_25519_ChaChaPoly_BLAKE2s)');
  const chainKey = hash(name);
  return { chainKey, hash: hash(chainKey, prologue) };
}

/** C = HASH(CONSTRUCTION), H = HASH(C ‖ IDENTIFIER). */
export const WIREGUARD_START = noiseStart(CONSTRUCTION, enc.encode(IDENTIFIER));
export const INITIAL_CHAIN_KEY = WIREGUARD_START.chainKey;
export const INITIAL_HASH = WIREGUARD_START.hash;

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

// ---------------------------------------------------------------- the IKpsk2 messages
//
// The four functions below are the Noise pattern itself, free of WireGuard's message layout:
//   <- s
//   ...
//   -> e, es, s, ss, {payload}        (WireGuard: payload = TAI64N timestamp)
//   <- e, ee, se, psk, {payload}      (WireGuard: payload empty)
// They are what the Noise test vectors check (test/unit/wg-noise-vectors.test.ts); the
// WireGuard functions after them put their fields into messages and keep the per-peer state.

/** The fields of message 1 and the symmetric state after it. */
export interface Message1 {
  readonly ephemeral: Uint8Array;
  /** Our static public key, sealed: 32 + 16 bytes. */
  readonly encryptedStatic: Uint8Array;
  readonly encryptedPayload: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/**
 * Initiator: -> e, es, s, ss, {payload}. `staticStatic` is DH(our static, their static)
 * (precomputed per peer). Null when a DH result is all zeros (a low-order point).
 */
export function writeMessage1(
  start: NoiseStart,
  identity: StaticIdentity,
  remoteStatic: Uint8Array,
  staticStatic: Uint8Array,
  eph: KeyObject,
  payload: Uint8Array,
): Message1 | null {
  const ephPub = publicKeyOf(eph);
  let h = hash(start.hash, remoteStatic);
  let c = kdf1(start.chainKey, ephPub);
  h = hash(h, ephPub);
  const es = dh(eph, remoteStatic);
  if (es === null) return null;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const encryptedStatic = aeadSeal(k, 0, identity.publicKey, h);
  h = hash(h, encryptedStatic);
  [c, k] = kdf2(c, staticStatic);
  const encryptedPayload = aeadSeal(k, 0, payload, h);
  h = hash(h, encryptedPayload);
  return { ephemeral: ephPub, encryptedStatic, encryptedPayload, chainKey: c, hash: h };
}

/** The fields of message 2 and the symmetric state after it. */
export interface Message2 {
  readonly ephemeral: Uint8Array;
  readonly encryptedPayload: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/** Responder: <- e, ee, se, psk, {payload}, from the state after message 1. */
export function writeMessage2(
  after1: NoiseStart,
  eph: KeyObject,
  remoteEphemeral: Uint8Array,
  remoteStatic: Uint8Array,
  presharedKey: Uint8Array,
  payload: Uint8Array,
): Message2 | null {
  const ephPub = publicKeyOf(eph);
  let h = hash(after1.hash, ephPub);
  let c = kdf1(after1.chainKey, ephPub);
  const ee = dh(eph, remoteEphemeral);
  const se = dh(eph, remoteStatic);
  if (ee === null || se === null) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, presharedKey);
  h = hash(h, tau);
  const encryptedPayload = aeadSeal(k, 0, payload, h);
  h = hash(h, encryptedPayload);
  return { ephemeral: ephPub, encryptedPayload, chainKey: c2, hash: h };
}

/** The payload of message 2 and the symmetric state after it (initiator). */
export interface Message2Opened {
  readonly payload: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

/** Initiator: read message 2's fields. Null when it does not authenticate. */
export function readMessage2(
  after1: NoiseStart,
  identity: StaticIdentity,
  localEphemeral: KeyObject,
  ephemeral: Uint8Array,
  presharedKey: Uint8Array,
  encryptedPayload: Uint8Array,
): Message2Opened | null {
  let h = hash(after1.hash, ephemeral);
  let c = kdf1(after1.chainKey, ephemeral);
  const ee = dh(localEphemeral, ephemeral);
  const se = dh(identity.privateKey, ephemeral);
  if (ee === null || se === null) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, presharedKey);
  h = hash(h, tau);
  const payload = aeadOpen(k, 0, encryptedPayload, h);
  if (payload === null) return null;
  h = hash(h, encryptedPayload);
  return { payload, chainKey: c2, hash: h };
}

/** Split: (T_initiator→responder, T_responder→initiator) = KDF2(C, ε). */
export function splitKeys(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return kdf2(chainKey, EMPTY);
}

// ---------------------------------------------------------------- WireGuard's handshake

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
  const m = writeMessage1(WIREGUARD_START, identity, hs.remoteStatic, hs.precomputedStaticStatic, eph, timestamp);
  if (m === null) return null;

  hs.hash = m.hash;
  hs.chainKey = m.chainKey;
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.state = 'initiation-created';
  return encodeInitiation({
    sender: localIndex,
    ephemeral: m.ephemeral,
    encryptedStatic: m.encryptedStatic,
    encryptedTimestamp: m.encryptedPayload,
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

/**
 * Responder, message 1 up to s: whose initiation this is. Null when it does not authenticate.
 * (The payload needs DH(s, s), so it waits for the peer: readMessage1Payload.)
 */
export function readMessage1Static(
  start: NoiseStart,
  identity: StaticIdentity,
  ephemeral: Uint8Array,
  encryptedStatic: Uint8Array,
): { peerPublic: Uint8Array; chainKey: Uint8Array; hash: Uint8Array } | null {
  let h = hash(start.hash, identity.publicKey);
  h = hash(h, ephemeral);
  const es = dh(identity.privateKey, ephemeral);
  if (es === null) return null;
  const [c, k] = kdf2(kdf1(start.chainKey, ephemeral), es);
  const peerPublic = aeadOpen(k, 0, encryptedStatic, h);
  if (peerPublic === null) return null;
  h = hash(h, encryptedStatic);
  return { peerPublic, chainKey: c, hash: h };
}

/** Responder, the rest of message 1: ss, {payload}. Null when it does not authenticate. */
export function readMessage1Payload(
  afterStatic: NoiseStart,
  staticStatic: Uint8Array,
  encryptedPayload: Uint8Array,
): { payload: Uint8Array; chainKey: Uint8Array; hash: Uint8Array } | null {
  const [c, k] = kdf2(afterStatic.chainKey, staticStatic);
  const payload = aeadOpen(k, 0, encryptedPayload, afterStatic.hash);
  if (payload === null) return null;
  return { payload, chainKey: c, hash: hash(afterStatic.hash, encryptedPayload) };
}

/** Responder, step 1: decrypt the initiator's static key. Null when it does not authenticate. */
export function openInitiation(identity: StaticIdentity, msg: Uint8Array): InitiationOpened | null {
  const ephemeral = copyBytes(msg, INITIATION.ephemeral, INITIATION.ephemeral + 32);
  const encryptedStatic = msg.subarray(INITIATION.static, INITIATION.static + 48);
  const r = readMessage1Static(WIREGUARD_START, identity, ephemeral, encryptedStatic);
  if (r === null) return null;
  return { peerPublic: r.peerPublic, hash: r.hash, chainKey: r.chainKey, ephemeral, sender: readU32LE(msg, INITIATION.sender) };
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
  const encryptedTimestamp = msg.subarray(INITIATION.timestamp, INITIATION.timestamp + 28);
  const r = readMessage1Payload(opened, hs.precomputedStaticStatic, encryptedTimestamp);
  if (r === null) return 'bad-timestamp';
  const { payload: timestamp, chainKey: c, hash: h } = r;
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
  const m = writeMessage2(hs, eph, hs.remoteEphemeral, hs.remoteStatic, hs.presharedKey, EMPTY);
  if (m === null) return null;

  hs.hash = m.hash;
  hs.chainKey = m.chainKey;
  hs.localEphemeral = eph;
  hs.localIndex = localIndex;
  hs.state = 'response-created';
  return encodeResponse({
    sender: localIndex,
    receiver: hs.remoteIndex,
    ephemeral: m.ephemeral,
    encryptedNothing: m.encryptedPayload,
    mac1: new Uint8Array(16),
    mac2: new Uint8Array(16),
  });
}

/** Initiator: consume message 2 for the handshake it answers. False when it does not authenticate. */
export function consumeResponse(identity: StaticIdentity, hs: Handshake, msg: Uint8Array): boolean {
  if (hs.state !== 'initiation-created' || hs.localEphemeral === null) return false;
  const ephemeral = msg.subarray(RESPONSE.ephemeral, RESPONSE.ephemeral + 32);
  const encryptedNothing = msg.subarray(RESPONSE.empty, RESPONSE.empty + 16);
  const r = readMessage2(hs, identity, hs.localEphemeral, ephemeral, hs.presharedKey, encryptedNothing);
  if (r === null || r.payload.length !== 0) return false;

  hs.hash = r.hash;
  hs.chainKey = r.chainKey;
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
    const [a, b] = splitKeys(hs.chainKey);
    keys = { sendKey: a, receiveKey: b, isInitiator: true, localIndex: hs.localIndex, remoteIndex: hs.remoteIndex };
  } else if (hs.state === 'response-created') {
    const [a, b] = splitKeys(hs.chainKey);
    keys = { sendKey: b, receiveKey: a, isInitiator: false, localIndex: hs.localIndex, remoteIndex: hs.remoteIndex };
  } else {
    return null;
  }
  hs.clear();
  return keys;
}

/**
 * The device's glue to the Noise handshake (noise.ts): sending initiations and responses,
 * consuming the handshake messages the receive path hands over, cookie replies and the under-load
 * state that demands them. Handshakes are rare, so these may allocate; the transport paths never
 * call in here per packet except to start a handshake for a peer without a session.
 */
import { ADDR_SIZE } from '../packet-batch.js';
import { HANDSHAKE_INITIATION_RATE, INITIATION_SIZE, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, RESPONSE_SIZE, UNDER_LOAD_AFTER_TIME } from './constants.js';
import type { DeviceState } from './device-state.js';
import { beginSymmetricSession } from './keypair-rotation.js';
import { encodeCookieReply, readU32LE } from './messages.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, openInitiation } from './noise.js';
import { compareBytes, tai64n } from './noise-crypto.js';
import type { Peer } from './peer.js';
import {
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersHandshakeComplete,
  timersHandshakeInitiated,
  timersSessionDerived,
} from './timers.js';

/** The next TAI64N after `prev` (add 2^24 ns, carrying into seconds). */
function bumpTimestamp(prev: Uint8Array): Uint8Array {
  const out = new Uint8Array(prev);
  const v = new DataView(out.buffer);
  let nanos = v.getUint32(8, false) + 0x1000000;
  if (nanos >= 1_000_000_000) {
    nanos = 0;
    v.setBigUint64(0, v.getBigUint64(0, false) + 1n, false);
  }
  v.setUint32(8, nanos, false);
  return out;
}

/**
 * Start (or, with isRetry, retry) a handshake with `peer`, at most once per REKEY_TIMEOUT and
 * only with an identity and an endpoint.
 */
export function sendHandshakeInitiation(dev: DeviceState, peer: Peer, isRetry: boolean): void {
  if (peer.removed) return;
  if (!isRetry) peer.timers.handshakeAttempts = 0;
  const now = dev.clock.now();
  const hs = peer.handshake;
  if (now - hs.lastSentHandshake < dev.timers.rekeyTimeout) return;
  if (dev.identity === null || hs.precomputedStaticStatic === null) return;
  if (peer.endpoint === null) return;
  hs.lastSentHandshake = now;
  dev.index.delete(hs.localIndex);
  const localIndex = dev.index.newHandshakeIndex(peer);
  let ts = tai64n(dev.clock.wallNanos());
  if (compareBytes(ts, peer.lastSentTimestamp) <= 0) ts = bumpTimestamp(peer.lastSentTimestamp);
  peer.lastSentTimestamp = ts;
  const msg = createInitiation(dev.identity, hs, dev.rng(32), ts, localIndex);
  if (msg === null) {
    dev.index.delete(localIndex);
    return;
  }
  peer.cookieGenerator.addMacs(msg);
  timersAnyAuthenticatedPacketTraversal(dev, peer, now);
  timersAnyAuthenticatedPacketSent(peer);
  timersHandshakeInitiated(dev, peer, now);
  peer.txBytes += msg.length;
  dev.onEvent({ type: 'handshake-initiated', peer: peer.publicKeyBase64, retry: isRetry });
  dev.bind.sendOne(msg, peer.endpoint);
}

/** Answer a consumed initiation and derive the session as responder (`next` keypair). */
function sendHandshakeResponse(dev: DeviceState, peer: Peer): void {
  const now = dev.clock.now();
  const hs = peer.handshake;
  hs.lastSentHandshake = now;
  dev.index.delete(hs.localIndex);
  const localIndex = dev.index.newHandshakeIndex(peer);
  const msg = createResponse(hs, dev.rng(32), localIndex);
  if (msg === null) {
    dev.index.delete(localIndex);
    dev.drop('handshake-failed');
    return;
  }
  peer.cookieGenerator.addMacs(msg);
  beginSymmetricSession(dev, peer, now);
  timersSessionDerived(dev, peer, now);
  timersAnyAuthenticatedPacketTraversal(dev, peer, now);
  timersAnyAuthenticatedPacketSent(peer);
  peer.txBytes += msg.length;
  if (peer.endpoint !== null) dev.bind.sendOne(msg, peer.endpoint);
}

/** Count one handshake message in the current one-second window; true while under load. */
function isUnderLoad(dev: DeviceState, now: number): boolean {
  if (now - dev.loadWindowStart >= 1000) {
    dev.loadWindowStart = now;
    dev.loadWindowCount = 0;
  }
  dev.loadWindowCount++;
  if (dev.loadWindowCount > dev.underLoadThreshold) dev.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
  return now < dev.underLoadUntil;
}

/**
 * A handshake message (initiation, response or cookie reply) at buf[off, off+len) from the
 * source at `slot` of `addrs`. Never throws: anything wrong is a 'handshake-failed' drop.
 */
export function handleHandshakeMessage(dev: DeviceState, type: number, buf: Buffer, off: number, len: number, addrs: Uint8Array, slot: number, now: number): void {
  try {
    handleHandshakeMessageUnsafe(dev, type, new Uint8Array(buf.subarray(off, off + len)), addrs, slot, now);
  } catch {
    dev.drop('handshake-failed');
  }
}

function handleHandshakeMessageUnsafe(dev: DeviceState, type: number, msg: Uint8Array, addrs: Uint8Array, slot: number, now: number): void {
  if (type === MESSAGE_COOKIE_REPLY) {
    const entry = dev.index.get(readU32LE(msg, 4));
    if (entry === undefined || entry.peer.removed || !entry.peer.cookieGenerator.consumeReply(msg)) {
      dev.drop('bad-cookie-reply');
      return;
    }
    dev.onEvent({ type: 'cookie-received', peer: entry.peer.publicKeyBase64 });
    return;
  }
  const identity = dev.identity;
  const checker = dev.cookieChecker;
  if (identity === null || checker === null) {
    dev.drop('no-private-key');
    return;
  }
  dev.counters.handshakesReceived++;
  if (!checker.checkMac1(msg)) {
    dev.drop('bad-mac1');
    return;
  }
  const srcOff = slot * ADDR_SIZE;
  const source = addrs.subarray(srcOff, srcOff + 18);
  if (isUnderLoad(dev, now)) {
    if (!checker.checkMac2(msg, source)) {
      const reply = encodeCookieReply(checker.createReply(msg, source));
      const to = dev.bind.endpointFor(addrs, slot);
      dev.bind.sendOne(reply, to);
      dev.counters.cookieRepliesSent++;
      dev.drop('cookie-required');
      dev.onEvent({ type: 'cookie-reply-sent', to: to.toString() });
      return;
    }
    if (!dev.rateLimiter.allow(addrs, srcOff, now)) {
      dev.drop('rate-limited');
      return;
    }
  }

  if (type === MESSAGE_INITIATION) {
    if (msg.length !== INITIATION_SIZE) return;
    const opened = openInitiation(identity, msg);
    if (opened === null) {
      dev.drop('bad-initiation');
      return;
    }
    const peer = dev.peers.get(Buffer.from(opened.peerPublic).toString('base64'));
    if (peer === undefined) {
      dev.drop('unknown-peer');
      return;
    }
    // Both sides started their first session at once (each pinged the other): consuming the
    // other's initiation would void our own, and each side's response would then be refused,
    // costing both a REKEY_TIMEOUT before the first packet. The side with the larger public key
    // keeps its initiation; the other answers. (Rekeys of a live session are left as they are.)
    const hs = peer.handshake;
    if (
      hs.state === 'initiation-created' &&
      peer.keypairs.current === null &&
      now - hs.lastSentHandshake < dev.timers.rekeyTimeout &&
      compareBytes(identity.publicKey, peer.publicKey) > 0
    ) {
      dev.counters.initiationsCrossed++;
      return;
    }
    const r = consumeInitiation(opened, msg, hs, now, HANDSHAKE_INITIATION_RATE);
    if (r !== 'ok') {
      dev.drop(r === 'replay' ? 'handshake-replay' : r === 'flood' ? 'handshake-flood' : 'bad-initiation');
      return;
    }
    timersAnyAuthenticatedPacketTraversal(dev, peer, now);
    timersAnyAuthenticatedPacketReceived(peer);
    if (peer.endpoint === null || !peer.endpoint.matches(addrs, slot)) dev.setEndpointFromPacket(peer, addrs, slot);
    peer.rxBytes += msg.length;
    sendHandshakeResponse(dev, peer);
    return;
  }

  if (type === MESSAGE_RESPONSE) {
    if (msg.length !== RESPONSE_SIZE) return;
    const entry = dev.index.get(readU32LE(msg, 8));
    if (entry === undefined || entry.keypair !== null || entry.peer.removed) {
      dev.drop('unknown-receiver');
      return;
    }
    const peer = entry.peer;
    if (!consumeResponse(identity, peer.handshake, msg)) {
      dev.drop('bad-response');
      return;
    }
    if (peer.endpoint === null || !peer.endpoint.matches(addrs, slot)) dev.setEndpointFromPacket(peer, addrs, slot);
    peer.rxBytes += msg.length;
    timersAnyAuthenticatedPacketTraversal(dev, peer, now);
    timersAnyAuthenticatedPacketReceived(peer);
    if (!beginSymmetricSession(dev, peer, now)) {
      dev.drop('handshake-failed');
      return;
    }
    timersSessionDerived(dev, peer, now);
    timersHandshakeComplete(dev, peer, true);
    // key confirmation for the responder: staged packets, or a keepalive (sent once the batch is done)
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    dev.flushQueue.add(peer);
  }
}

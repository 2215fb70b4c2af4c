/**
 * The send path: TUN batch → outbound filter hook → route by destination → (no session: stage
 * and start a handshake) → pad to 16 → transport header in the headroom → seal the batch in
 * place → bind.send → timers. Also the staged packets and keepalives that go out the same way.
 *
 * Synchronous per batch; no per-packet allocation (staging a packet for a handshake copies it).
 */
import { HEADROOM, type PacketBatch } from '../packet-batch.js';
import { MAX_STAGED_PACKETS, PADDING_MULTIPLE, REKEY_AFTER_MESSAGES, TAG_SIZE, TRANSPORT_HEADER_SIZE } from './constants.js';
import type { DeviceState } from './device-state.js';
import { sendHandshakeInitiation } from './handshake.js';
import { writeTransportHeader } from './messages.js';
import type { Peer } from './peer.js';
import { timersAnyAuthenticatedPacketSent, timersAnyAuthenticatedPacketTraversal, timersDataSent } from './timers.js';

/** Bytes after padding a packet of `len` to a multiple of 16, capped at the MTU (wireguard-go's rule). */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (mtu === 0) return (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}

/**
 * Encrypt and send every packet of `batch` (each at slot start + HEADROOM) to `fixedPeer`, or
 * routed by destination when it is null (then the outbound hook sees each packet first), in
 * place. On return the batch holds the sent datagrams.
 */
export function sealAndSend(dev: DeviceState, batch: PacketBatch, fixedPeer: Peer | null): void {
  const n = batch.count;
  const sc = dev.sendScratch;
  const epoch = sc.begin(n);
  const now = dev.clock.now();
  const buf = batch.buf;
  const slotSize = batch.slotSize;
  const offsets = batch.offsets;
  const lengths = batch.lengths;
  const mtu = dev.mtu;
  const hooks = fixedPeer === null ? dev.hooks : null;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const off = offsets[i]!;
    const len = lengths[i]!;
    if (hooks !== null && !hooks.outbound(buf, off, len)) {
      dev.drop('filtered-outbound');
      continue;
    }
    const peer = fixedPeer ?? dev.allowedIps.lookupDestination(buf, off, len);
    if (peer === null) {
      dev.drop('no-route');
      continue;
    }
    const kp = peer.keypairs.current;
    if (!dev.sendable(kp, now)) {
      stage(dev, peer, buf, off, len);
      sendHandshakeInitiation(dev, peer, false);
      continue;
    }
    if (peer.endpoint === null) {
      dev.drop('no-endpoint');
      continue;
    }
    const padded = paddedLength(len, mtu);
    const slotBase = off - (off % slotSize);
    if (off - slotBase < TRANSPORT_HEADER_SIZE || off + padded + TAG_SIZE > slotBase + slotSize) {
      dev.drop('packet-too-large');
      continue;
    }
    if (padded > len) buf.fill(0, off + len, off + padded);
    const counter = kp.sendCounter++;
    writeTransportHeader(buf, off - TRANSPORT_HEADER_SIZE, kp.remoteIndex, counter);
    if (kp.sealEpoch !== epoch) {
      kp.sealEpoch = epoch;
      kp.sealKeyIndex = sc.addKey(kp.sendKey);
    }
    sc.queue(k, kp.sealKeyIndex, counter, off, padded);
    sc.eps[k] = peer.endpoint;
    sc.peers[k] = peer;
    k++;
  }
  if (k === 0) {
    batch.count = 0;
    return;
  }
  sc.seal(dev.aead, buf, k);
  const r = sc.ranges;
  let out = 0;
  for (let j = 0; j < k; j++) {
    if (sc.ok[j] === 0) {
      dev.drop('packet-too-large');
      continue;
    }
    offsets[out] = r.offsets[j]! - TRANSPORT_HEADER_SIZE;
    lengths[out] = r.lengths[j]! + TRANSPORT_HEADER_SIZE;
    sc.eps[out] = sc.eps[j]!;
    sc.peers[out] = sc.peers[j]!;
    out++;
  }
  batch.count = out;
  if (out > 0) dev.bind.send(batch, sc.eps);

  let last: Peer | null = null;
  for (let j = 0; j < out; j++) {
    const peer = sc.peers[j]!;
    const bytes = lengths[j]!;
    peer.txBytes += bytes;
    dev.counters.txPackets++;
    dev.counters.txBytes += bytes;
    if (bytes > TRANSPORT_HEADER_SIZE + TAG_SIZE) timersDataSent(dev, peer, now);
    if (peer !== last) {
      timersAnyAuthenticatedPacketTraversal(dev, peer, now);
      timersAnyAuthenticatedPacketSent(peer);
      keepKeyFreshSending(dev, peer, now);
      last = peer;
    }
  }
  for (let j = 0; j < k; j++) {
    sc.peers[j] = null;
    sc.eps[j] = null;
  }
}

/** Keep a copy of a packet until the peer has a session (the oldest goes when full). */
function stage(dev: DeviceState, peer: Peer, buf: Uint8Array, off: number, len: number): void {
  if (peer.staged.length >= MAX_STAGED_PACKETS) {
    peer.staged.shift();
    dev.drop('staged-overflow');
  }
  peer.staged.push(new Uint8Array(buf.subarray(off, off + len))); // a copy: the batch is reused
}

/** wireguard-go SendStagedPackets: send what waits if a session is up, else start a handshake. */
export function sendStagedPackets(dev: DeviceState, peer: Peer): void {
  if (peer.staged.length === 0 || peer.removed) return;
  const now = dev.clock.now();
  if (!dev.sendable(peer.keypairs.current, now)) {
    sendHandshakeInitiation(dev, peer, false);
    return;
  }
  const b = dev.stagedBatch;
  b.reset(HEADROOM);
  const staged = peer.staged;
  peer.staged = [];
  for (const p of staged) {
    if (p.length + HEADROOM + TAG_SIZE + PADDING_MULTIPLE > b.slotSize) {
      dev.drop('packet-too-large');
      continue;
    }
    b.push(p, HEADROOM);
  }
  sealAndSend(dev, b, peer);
}

/** Queue a keepalive (an empty packet) behind whatever is staged, then flush. */
export function sendKeepalive(dev: DeviceState, peer: Peer): void {
  if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
  sendStagedPackets(dev, peer);
}

/** The initiator rekeys after REKEY_AFTER_MESSAGES or REKEY_AFTER_TIME of sending. */
function keepKeyFreshSending(dev: DeviceState, peer: Peer, now: number): void {
  const kp = peer.keypairs.current;
  if (kp !== null && kp.isInitiator && (kp.sendCounter > REKEY_AFTER_MESSAGES || now - kp.created > dev.timers.rekeyAfterTime)) {
    sendHandshakeInitiation(dev, peer, false);
  }
}

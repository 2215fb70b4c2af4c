/**
 * The receive path: bind batch → demultiplex by type → handshake messages to handshake.ts, or
 * transport: receiver index → keypair → replay pre-check → open the batch in place → replay
 * window update → key confirmation, roaming, timers → IP length and allowed-IP source check →
 * inbound filter hook → TUN write batch → staged packets that a completed handshake released.
 *
 * Synchronous per batch; no per-packet allocation on the transport path. Never throws on input.
 */
import type { PacketBatch } from '../packet-batch.js';
import { MESSAGE_TRANSPORT, TAG_SIZE, TRANSPORT_HEADER_SIZE } from './constants.js';
import type { DeviceState } from './device-state.js';
import { handleHandshakeMessage, sendHandshakeInitiation } from './handshake.js';
import type { IndexEntry } from './index-table.js';
import { receivedWithKeypair } from './keypair-rotation.js';
import { messageType, transportCounter, transportReceiver } from './messages.js';
import type { Peer } from './peer.js';
import { sendStagedPackets } from './send.js';
import { timersAnyAuthenticatedPacketReceived, timersAnyAuthenticatedPacketTraversal, timersDataReceived, timersHandshakeComplete } from './timers.js';

/**
 * Datagrams received by the bind (each at its slot start, source in addrs). Decrypted packets
 * are written to the TUN from the same batch.
 */
export function receiveDatagrams(dev: DeviceState, batch: PacketBatch): void {
  const n = batch.count;
  const sc = dev.recvScratch;
  const epoch = sc.begin(n);
  const now = dev.clock.now();
  const buf = batch.buf;
  const offsets = batch.offsets;
  const lengths = batch.lengths;
  const rejectAfter = dev.timers.rejectAfterTime;
  let m = 0;
  // The datagrams of a batch mostly name the same receiver index: one table lookup per run.
  let lastReceiver = -1;
  let lastEntry: IndexEntry<Peer> | undefined;
  for (let i = 0; i < n; i++) {
    const off = offsets[i]!;
    const len = lengths[i]!;
    const type = messageType(buf, off, len);
    if (type !== MESSAGE_TRANSPORT) {
      lastReceiver = -1; // a handshake may change the index table
      if (type === 0) dev.drop('invalid-message');
      else handleHandshakeMessage(dev, type, buf, off, len, batch.addrs, i, now);
      continue;
    }
    const receiver = transportReceiver(buf, off);
    if (receiver !== lastReceiver) {
      lastReceiver = receiver;
      lastEntry = dev.index.get(receiver);
    }
    const entry = lastEntry;
    const kp = entry === undefined ? null : entry.keypair;
    if (kp === null) {
      dev.drop('unknown-receiver');
      continue;
    }
    if (now - kp.created >= rejectAfter) {
      dev.drop('expired-keypair');
      continue;
    }
    const counter = transportCounter(buf, off);
    if (!kp.replay.mayAccept(counter)) {
      dev.drop('replay');
      continue;
    }
    if (kp.openEpoch !== epoch) {
      kp.openEpoch = epoch;
      kp.openKeyIndex = sc.addKey(kp.receiveKey);
    }
    sc.queue(m, kp.openKeyIndex, counter, off + TRANSPORT_HEADER_SIZE, len - TRANSPORT_HEADER_SIZE);
    sc.counterNum[m] = counter;
    sc.slots[m] = i;
    sc.keypairs[m] = kp;
    m++;
  }
  if (m === 0) {
    batch.count = 0;
    flushStaged(dev);
    return;
  }
  sc.open(dev.aead, buf, m);
  const r = sc.ranges;

  let out = 0;
  let lastPeer: Peer | null = null;
  for (let j = 0; j < m; j++) {
    const kp = sc.keypairs[j]!;
    sc.keypairs[j] = null;
    const peer = kp.peer;
    if (sc.ok[j] === 0) {
      dev.drop('decrypt-failed');
      continue;
    }
    if (!kp.replay.validate(sc.counterNum[j]!)) {
      dev.drop('replay');
      continue;
    }
    if (peer.removed) {
      dev.drop('unknown-receiver');
      continue;
    }
    const slot = sc.slots[j]!;
    const plen = r.lengths[j]!;
    const datagramLen = plen + TRANSPORT_HEADER_SIZE + TAG_SIZE;
    if (receivedWithKeypair(dev, peer, kp)) {
      timersHandshakeComplete(dev, peer, false);
      dev.flushQueue.add(peer);
    }
    const ep = peer.endpoint;
    if (ep === null || !ep.matches(batch.addrs, slot)) dev.setEndpointFromPacket(peer, batch.addrs, slot);
    peer.rxBytes += datagramLen;
    dev.counters.rxPackets++;
    dev.counters.rxBytes += datagramLen;
    if (peer !== lastPeer) {
      keepKeyFreshReceiving(dev, peer, now);
      timersAnyAuthenticatedPacketTraversal(dev, peer, now);
      timersAnyAuthenticatedPacketReceived(peer);
      lastPeer = peer;
    }
    const poff = r.offsets[j]!;
    if (plen === 0) continue; // keepalive
    timersDataReceived(dev, peer, now);
    const version = buf[poff]! >> 4;
    let ipLen: number;
    if (version === 4) {
      if (plen < 20) {
        dev.drop('bad-ip-packet');
        continue;
      }
      ipLen = (buf[poff + 2]! << 8) | buf[poff + 3]!;
      if (ipLen > plen || ipLen < 20) {
        dev.drop('bad-ip-packet');
        continue;
      }
    } else if (version === 6) {
      if (plen < 40) {
        dev.drop('bad-ip-packet');
        continue;
      }
      ipLen = ((buf[poff + 4]! << 8) | buf[poff + 5]!) + 40;
      if (ipLen > plen) {
        dev.drop('bad-ip-packet');
        continue;
      }
    } else {
      dev.drop('bad-ip-packet');
      continue;
    }
    if (dev.allowedIps.lookupSource(buf, poff, ipLen) !== peer) {
      dev.drop('source-not-allowed');
      continue;
    }
    if (dev.hooks !== null && !dev.hooks.inbound(buf, poff, ipLen, peer)) {
      dev.drop('filtered-inbound');
      continue;
    }
    offsets[out] = poff;
    lengths[out] = ipLen;
    out++;
  }
  batch.count = out;
  if (out > 0) dev.tunWrite(batch);
  flushStaged(dev);
}

/** Send what the handshakes completed in this batch released (after the batch, not inside it). */
function flushStaged(dev: DeviceState): void {
  if (dev.flushQueue.size === 0) return;
  const peers = [...dev.flushQueue];
  dev.flushQueue.clear();
  for (const p of peers) sendStagedPackets(dev, p);
}

/**
 * The initiator rekeys once, shortly before REJECT_AFTER_TIME, if it is still receiving under
 * the old session (a passive initiator would otherwise never notice).
 */
function keepKeyFreshReceiving(dev: DeviceState, peer: Peer, now: number): void {
  if (peer.timers.sentLastMinuteHandshake) return;
  const kp = peer.keypairs.current;
  const t = dev.timers;
  if (kp !== null && kp.isInitiator && now - kp.created > t.rejectAfterTime - t.keepaliveTimeout - t.rekeyTimeout) {
    peer.timers.sentLastMinuteHandshake = true;
    sendHandshakeInitiation(dev, peer, false);
  }
}

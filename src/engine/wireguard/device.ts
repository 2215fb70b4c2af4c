/**
 * The WireGuard device: peers, the allowed-IPs table, the index table, and the two data paths.
 *
 * Send:    TUN batch → route by destination → (no session: stage + handshake) → pad to 16 →
 *          transport header in the headroom → seal the batch in place → bind.send.
 * Receive: bind batch → demultiplex by type → handshake messages handled synchronously, or
 *          transport: receiver index → keypair → replay pre-check → open the batch in place →
 *          replay window update → roaming, key confirmation, timers → source allowed-IP check →
 *          TUN write batch.
 *
 * Everything runs on the event loop, synchronously per batch: no promises or timers per packet,
 * no per-packet Buffers on the transport paths (handshakes may allocate). Every dropped packet is
 * counted under a reason (counters.ts). Timers follow wireguard-go's timers.go.
 */
import { ADDR_SIZE, PacketBatch, HEADROOM } from '../packet-batch.js';
import type { Bind, Endpoint } from './bind.js';
import {
  HANDSHAKE_INITIATION_RATE,
  INITIATION_SIZE,
  MAX_STAGED_PACKETS,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  PADDING_MULTIPLE,
  REJECT_AFTER_MESSAGES,
  REKEY_AFTER_MESSAGES,
  RESPONSE_SIZE,
  TAG_SIZE,
  TRANSPORT_HEADER_SIZE,
  UNDER_LOAD_AFTER_TIME,
  UNDER_LOAD_HANDSHAKES_PER_SECOND,
  timerConfig,
  type TimerConfig,
} from './constants.js';
import { CookieChecker, type Rng } from './cookie.js';
import { newDropCounters, type DropCounters, type DropReason } from './counters.js';
import { IndexTable } from './index-table.js';
import { Keypair } from './keypair.js';
import { encodeCookieReply, messageType, readU32LE, transportCounter, transportReceiver, writeTransportHeader } from './messages.js';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSession,
  openInitiation,
  staticIdentity,
  type StaticIdentity,
} from './noise.js';
import { compareBytes, tai64n } from './noise-crypto.js';
import { Peer } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { jitter, systemClock, type Clock, type Ticker } from './timers.js';
import { AllowedIps } from './allowed-ips.js';
import { createAeadBatch, type AeadBatch } from '../crypto/aead-batch.js';
import type { IpPrefix } from './ip-prefix.js';
import { randomBytes } from 'node:crypto';

export type DeviceEvent =
  | { type: 'handshake-initiated'; peer: string; retry: boolean }
  | { type: 'handshake-complete'; peer: string; initiator: boolean }
  | { type: 'handshake-gave-up'; peer: string; attempts: number }
  | { type: 'endpoint-changed'; peer: string; endpoint: string }
  | { type: 'keys-zeroed'; peer: string }
  | { type: 'cookie-reply-sent'; to: string }
  | { type: 'cookie-received'; peer: string };

/**
 * Per-packet hooks for the packet filter (spec 6.4): synchronous, must not keep the buffer.
 * Returning false drops the packet (counted as filtered-inbound / filtered-outbound).
 */
export interface PacketHooks {
  /** A decrypted packet from `peer` that passed the allowed-IPs source check, before the TUN. */
  inbound(buf: Uint8Array, off: number, len: number, peer: Peer): boolean;
  /** A packet read from the TUN, before routing and encryption. */
  outbound(buf: Uint8Array, off: number, len: number): boolean;
}

export interface DeviceOptions {
  bind: Bind;
  /** Write a batch of decrypted IP packets to the TUN (packet i at offsets[i], lengths[i]). */
  tunWrite: (batch: PacketBatch) => void;
  /** TUN MTU: padding is capped at it. */
  mtu: number;
  /** Transport AEAD; default: createAeadBatch() (native unless MESHD_PURE_TS=1). */
  aead?: AeadBatch;
  clock?: Clock;
  rng?: Rng;
  timers?: TimerConfig;
  onEvent?: (e: DeviceEvent) => void;
  /** Handshake messages per second that put the device under load (cookies required). */
  underLoadHandshakesPerSecond?: number;
  hooks?: PacketHooks | null;
}

export interface PeerSettings {
  publicKey: Uint8Array;
  /** Replaces the peer's allowed IPs when given. */
  allowedIps?: IpPrefix[];
  /** Sets the endpoint when given (null clears it). */
  endpoint?: Endpoint | null;
  /** Seconds, 0 = off. */
  persistentKeepalive?: number;
  /** 32 bytes; all zero = none. */
  presharedKey?: Uint8Array | null;
}

export interface PeerStats {
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** Wall-clock ms of the last completed handshake, 0 = never. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
  /** A session key is usable for sending right now. */
  hasSession: boolean;
  handshakes: number;
}

export interface DeviceCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  handshakesReceived: number;
  cookieRepliesSent: number;
  drops: DropCounters;
}

/** Bytes after padding a packet of `len` to a multiple of 16, capped at the MTU (wireguard-go's rule). */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (mtu === 0) return (len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}

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

const NO_PEER: Peer | null = null;

/** Packet ranges handed to the AEAD (a PacketRanges whose arrays the device owns). */
interface MutableRanges {
  buf: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

export class Device {
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  readonly counters: DeviceCounters = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    handshakesReceived: 0,
    cookieRepliesSent: 0,
    drops: newDropCounters(),
  };
  readonly timers: TimerConfig;

  private readonly bind: Bind;
  private readonly tunWrite: (batch: PacketBatch) => void;
  private readonly mtu: number;
  private readonly aead: AeadBatch;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly onEvent: (e: DeviceEvent) => void;
  private readonly index: IndexTable<Peer>;
  private readonly rateLimiter = new RateLimiter();
  private readonly underLoadThreshold: number;
  private hooks: PacketHooks | null;
  private identity: StaticIdentity | null = null;
  private cookieChecker: CookieChecker | null = null;
  private ticker: Ticker | null = null;
  private closed = false;

  // under-load accounting: handshake messages seen in the current one-second window
  private loadWindowStart = 0;
  private loadWindowCount = 0;
  private underLoadUntil = -Infinity;

  // send scratch: the ranges handed to the AEAD, a per-batch key table, per-packet state
  private sCap = 0;
  private sEpoch = 0;
  private readonly sRanges: MutableRanges = { buf: new Uint8Array(0), offsets: new Uint32Array(0), lengths: new Uint32Array(0), count: 0 };
  private sKeyBuf = new Uint8Array(0);
  private sKeyIdx = new Uint32Array(0);
  private sCounters = new Uint32Array(0);
  private sOk = new Uint8Array(0);
  private sEps: Array<Endpoint | null> = [];
  private sPeers: Array<Peer | null> = [];
  // receive scratch
  private rCap = 0;
  private rEpoch = 0;
  private readonly rRanges: MutableRanges = { buf: new Uint8Array(0), offsets: new Uint32Array(0), lengths: new Uint32Array(0), count: 0 };
  private rKeyBuf = new Uint8Array(0);
  private rKeyIdx = new Uint32Array(0);
  private rCounters = new Uint32Array(0);
  private rOk = new Uint8Array(0);
  private rSlots = new Uint32Array(0);
  private rCounterNum = new Float64Array(0);
  private rKeypairs: Array<Keypair<Peer> | null> = [];
  /** Staged packets are sealed from here, never from a batch owned by the TUN or the bind. */
  private readonly stagedBatch = new PacketBatch(MAX_STAGED_PACKETS);
  private readonly flushQueue = new Set<Peer>();

  constructor(opts: DeviceOptions) {
    this.bind = opts.bind;
    this.tunWrite = opts.tunWrite;
    this.mtu = opts.mtu;
    this.aead = opts.aead ?? createAeadBatch();
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? ((n) => new Uint8Array(randomBytes(n)));
    this.timers = opts.timers ?? timerConfig(1);
    this.onEvent = opts.onEvent ?? (() => {});
    this.underLoadThreshold = opts.underLoadHandshakesPerSecond ?? UNDER_LOAD_HANDSHAKES_PER_SECOND;
    this.index = new IndexTable<Peer>(this.rng);
    this.hooks = opts.hooks ?? null;
    this.ensureSendScratch(64);
    this.ensureRecvScratch(64);
  }

  /** Start the timer tick. Packet handlers may be called before or after. */
  start(): void {
    if (this.ticker !== null || this.closed) return;
    this.ticker = this.clock.every(this.timers.tickInterval, () => this.tick());
    // like wireguard-go's device up: peers with a persistent keepalive say hello at once
    for (const peer of this.peers.values()) if (peer.persistentKeepalive > 0) this.sendKeepalive(peer);
  }

  close(): void {
    this.closed = true;
    this.ticker?.cancel();
    this.ticker = null;
    for (const p of [...this.peers.values()]) this.removePeer(p.publicKey);
    this.index.clear();
  }

  /** Install or remove the packet filter hooks (takes effect with the next packet). */
  setHooks(hooks: PacketHooks | null): void {
    this.hooks = hooks;
  }

  get publicKey(): Uint8Array | null {
    return this.identity?.publicKey ?? null;
  }

  // ---------------------------------------------------------------- configuration

  /** Set (or clear) our static key. Setting the key already in use changes nothing. */
  setPrivateKey(privateKey: Uint8Array | null): void {
    const next = privateKey === null ? null : staticIdentity(privateKey);
    const cur = this.identity;
    if (next !== null && cur !== null && Buffer.compare(Buffer.from(next.publicKey), Buffer.from(cur.publicKey)) === 0) return;
    this.identity = next;
    this.cookieChecker =
      this.identity === null ? null : new CookieChecker(this.identity.publicKey, this.rng, () => this.clock.now(), this.timers.cookieRefreshTime);
    for (const peer of this.peers.values()) {
      this.zeroKeys(peer, false);
      this.precompute(peer);
      peer.handshake.lastSentHandshake = -Infinity; // a new identity may handshake at once
    }
  }

  private precompute(peer: Peer): void {
    const self = this.identity !== null && Buffer.compare(Buffer.from(this.identity.publicKey), Buffer.from(peer.publicKey)) === 0;
    peer.handshake.precompute(self ? null : this.identity);
  }

  /** Add a peer, or update it when its key is already known. */
  upsertPeer(s: PeerSettings): Peer {
    if (s.publicKey.length !== 32) throw new RangeError('public key must be 32 bytes');
    const key = Buffer.from(s.publicKey).toString('base64');
    let peer = this.peers.get(key);
    const isNew = peer === undefined;
    if (peer === undefined) {
      peer = new Peer(new Uint8Array(s.publicKey), () => this.clock.now(), this.timers.cookieRefreshTime);
      this.peers.set(key, peer);
      this.precompute(peer);
    }
    if (s.presharedKey !== undefined) {
      peer.handshake.presharedKey = s.presharedKey === null ? new Uint8Array(32) : new Uint8Array(s.presharedKey);
    }
    // the same address again keeps the current object (a network map re-applied changes nothing)
    if (s.endpoint !== undefined && (s.endpoint === null || peer.endpoint === null || s.endpoint.toString() !== peer.endpoint.toString())) {
      peer.endpoint = s.endpoint;
    }
    if (s.allowedIps !== undefined) {
      this.allowedIps.removeValue(peer);
      for (const p of s.allowedIps) this.allowedIps.insert(p, peer);
    }
    if (s.persistentKeepalive !== undefined) {
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = s.persistentKeepalive;
      if (s.persistentKeepalive > 0 && (was === 0 || isNew) && this.ticker !== null) this.sendKeepalive(peer);
      if (s.persistentKeepalive === 0) peer.timers.persistentKeepalive = Infinity;
    }
    return peer;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const key = Buffer.from(publicKey).toString('base64');
    const peer = this.peers.get(key);
    if (peer === undefined) return false;
    peer.removed = true;
    this.peers.delete(key);
    this.allowedIps.removeValue(peer);
    this.zeroKeys(peer, false);
    this.index.deletePeer(peer);
    peer.timers.stopAll();
    peer.staged = [];
    this.flushQueue.delete(peer);
    return true;
  }

  getPeer(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('base64'));
  }

  peerStats(): PeerStats[] {
    const now = this.clock.now();
    return [...this.peers.values()].map((p) => ({
      publicKey: p.publicKeyBase64,
      endpoint: p.endpoint === null ? null : p.endpoint.toString(),
      allowedIps: this.allowedIps.prefixesOf(p),
      lastHandshake: p.lastHandshakeWallMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive,
      hasSession: this.sendable(p.keypairs.current, now),
      handshakes: p.handshakesCompleted,
    }));
  }

  private drop(reason: DropReason): void {
    this.counters.drops[reason]++;
  }

  private sendable(kp: Keypair<Peer> | null, now: number): kp is Keypair<Peer> {
    return kp !== null && kp.sendCounter < REJECT_AFTER_MESSAGES && now - kp.created < this.timers.rejectAfterTime;
  }

  // ---------------------------------------------------------------- send path

  /** Packets read from the TUN (each at slot start + HEADROOM). The batch is reused for sending. */
  handleTunBatch(batch: PacketBatch): void {
    this.sealAndSend(batch, NO_PEER);
  }

  private ensureSendScratch(n: number): void {
    if (n <= this.sCap) return;
    this.sCap = n;
    this.sRanges.offsets = new Uint32Array(n);
    this.sRanges.lengths = new Uint32Array(n);
    this.sKeyBuf = new Uint8Array(n * 32);
    this.sKeyIdx = new Uint32Array(n);
    this.sCounters = new Uint32Array(n * 2);
    this.sOk = new Uint8Array(n);
    this.sEps = new Array<Endpoint | null>(n).fill(null);
    this.sPeers = new Array<Peer | null>(n).fill(null);
  }

  /**
   * Encrypt and send every packet of `batch` (to `fixedPeer`, or routed by destination), in place.
   * On return the batch holds the sent datagrams.
   */
  private sealAndSend(batch: PacketBatch, fixedPeer: Peer | null): void {
    const n = batch.count;
    this.ensureSendScratch(n);
    const now = this.clock.now();
    const buf = batch.buf;
    const slotSize = batch.slotSize;
    const offsets = batch.offsets;
    const lengths = batch.lengths;
    const mtu = this.mtu;
    const r = this.sRanges;
    const epoch = ++this.sEpoch;
    const hooks = fixedPeer === null ? this.hooks : null;
    let nKeys = 0;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      if (hooks !== null && !hooks.outbound(buf, off, len)) {
        this.drop('filtered-outbound');
        continue;
      }
      const peer = fixedPeer ?? this.allowedIps.lookupDestination(buf, off, len);
      if (peer === null) {
        this.drop('no-route');
        continue;
      }
      const kp = peer.keypairs.current;
      if (!this.sendable(kp, now)) {
        this.stage(peer, buf, off, len);
        this.sendHandshakeInitiation(peer, false);
        continue;
      }
      if (peer.endpoint === null) {
        this.drop('no-endpoint');
        continue;
      }
      const padded = paddedLength(len, mtu);
      const slotBase = off - (off % slotSize);
      if (off - slotBase < TRANSPORT_HEADER_SIZE || off + padded + TAG_SIZE > slotBase + slotSize) {
        this.drop('packet-too-large');
        continue;
      }
      if (padded > len) buf.fill(0, off + len, off + padded);
      const counter = kp.sendCounter++;
      writeTransportHeader(buf, off - TRANSPORT_HEADER_SIZE, kp.remoteIndex, counter);
      if (kp.sealEpoch !== epoch) {
        kp.sealEpoch = epoch;
        kp.sealKeyIndex = nKeys;
        this.sKeyBuf.set(kp.sendKey, nKeys * 32);
        nKeys++;
      }
      this.sKeyIdx[k] = kp.sealKeyIndex;
      this.sCounters[2 * k] = counter >>> 0;
      this.sCounters[2 * k + 1] = Math.floor(counter / 4294967296);
      r.offsets[k] = off;
      r.lengths[k] = padded;
      this.sEps[k] = peer.endpoint;
      this.sPeers[k] = peer;
      k++;
    }
    if (k === 0) {
      batch.count = 0;
      return;
    }
    r.buf = buf;
    r.count = k;
    this.aead.seal(r, this.sKeyBuf, this.sKeyIdx, this.sCounters, this.sOk, 0, k);
    let out = 0;
    for (let j = 0; j < k; j++) {
      if (this.sOk[j] === 0) {
        this.drop('packet-too-large');
        continue;
      }
      offsets[out] = r.offsets[j]! - TRANSPORT_HEADER_SIZE;
      lengths[out] = r.lengths[j]! + TRANSPORT_HEADER_SIZE;
      this.sEps[out] = this.sEps[j]!;
      this.sPeers[out] = this.sPeers[j]!;
      out++;
    }
    batch.count = out;
    if (out > 0) this.bind.send(batch, this.sEps);

    let last: Peer | null = null;
    for (let j = 0; j < out; j++) {
      const peer = this.sPeers[j]!;
      const bytes = lengths[j]!;
      peer.txBytes += bytes;
      this.counters.txPackets++;
      this.counters.txBytes += bytes;
      if (bytes > TRANSPORT_HEADER_SIZE + TAG_SIZE) this.timersDataSent(peer, now);
      if (peer !== last) {
        this.timersAnyAuthenticatedPacketTraversal(peer, now);
        this.timersAnyAuthenticatedPacketSent(peer);
        this.keepKeyFreshSending(peer, now);
        last = peer;
      }
    }
    for (let j = 0; j < k; j++) {
      this.sPeers[j] = null;
      this.sEps[j] = null;
    }
  }

  private stage(peer: Peer, buf: Uint8Array, off: number, len: number): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drop('staged-overflow');
    }
    peer.staged.push(new Uint8Array(buf.subarray(off, off + len))); // a copy: the batch is reused
  }

  /** wireguard-go SendStagedPackets: send what waits if a session is up, else start a handshake. */
  private sendStagedPackets(peer: Peer): void {
    if (peer.staged.length === 0 || peer.removed) return;
    const now = this.clock.now();
    if (!this.sendable(peer.keypairs.current, now)) {
      this.sendHandshakeInitiation(peer, false);
      return;
    }
    const b = this.stagedBatch;
    b.reset(HEADROOM);
    const staged = peer.staged;
    peer.staged = [];
    for (const p of staged) {
      if (p.length + HEADROOM + TAG_SIZE + PADDING_MULTIPLE > b.slotSize) {
        this.drop('packet-too-large');
        continue;
      }
      b.push(p, HEADROOM);
    }
    this.sealAndSend(b, peer);
  }

  /** Queue a keepalive (an empty packet) behind whatever is staged, then flush. */
  private sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.sendStagedPackets(peer);
  }

  private keepKeyFreshSending(peer: Peer, now: number): void {
    const kp = peer.keypairs.current;
    if (kp !== null && kp.isInitiator && (kp.sendCounter > REKEY_AFTER_MESSAGES || now - kp.created > this.timers.rekeyAfterTime)) {
      this.sendHandshakeInitiation(peer, false);
    }
  }

  private keepKeyFreshReceiving(peer: Peer, now: number): void {
    if (peer.timers.sentLastMinuteHandshake) return;
    const kp = peer.keypairs.current;
    const t = this.timers;
    if (kp !== null && kp.isInitiator && now - kp.created > t.rejectAfterTime - t.keepaliveTimeout - t.rekeyTimeout) {
      peer.timers.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(peer, false);
    }
  }

  // ---------------------------------------------------------------- handshake sending

  private sendHandshakeInitiation(peer: Peer, isRetry: boolean): void {
    if (peer.removed) return;
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    const now = this.clock.now();
    const hs = peer.handshake;
    if (now - hs.lastSentHandshake < this.timers.rekeyTimeout) return;
    if (this.identity === null || hs.precomputedStaticStatic === null) return;
    if (peer.endpoint === null) return;
    hs.lastSentHandshake = now;
    this.index.delete(hs.localIndex);
    const localIndex = this.index.newHandshakeIndex(peer);
    let ts = tai64n(this.clock.wallNanos());
    if (compareBytes(ts, peer.lastSentTimestamp) <= 0) ts = bumpTimestamp(peer.lastSentTimestamp);
    peer.lastSentTimestamp = ts;
    const msg = createInitiation(this.identity, hs, this.rng(32), ts, localIndex);
    if (msg === null) {
      this.index.delete(localIndex);
      return;
    }
    peer.cookieGenerator.addMacs(msg);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    peer.timers.retransmitHandshake = now + this.timers.rekeyTimeout + jitter(this.timers.rekeyTimeoutJitterMax);
    peer.txBytes += msg.length;
    this.onEvent({ type: 'handshake-initiated', peer: peer.publicKeyBase64, retry: isRetry });
    this.bind.sendOne(msg, peer.endpoint);
  }

  private sendHandshakeResponse(peer: Peer): void {
    const now = this.clock.now();
    const hs = peer.handshake;
    hs.lastSentHandshake = now;
    this.index.delete(hs.localIndex);
    const localIndex = this.index.newHandshakeIndex(peer);
    const msg = createResponse(hs, this.rng(32), localIndex);
    if (msg === null) {
      this.index.delete(localIndex);
      this.drop('handshake-failed');
      return;
    }
    peer.cookieGenerator.addMacs(msg);
    this.beginSymmetricSession(peer, now);
    this.timersSessionDerived(peer, now);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    peer.txBytes += msg.length;
    if (peer.endpoint !== null) this.bind.sendOne(msg, peer.endpoint);
  }

  /** Derive the session from the finished handshake and rotate the peer's keypairs. */
  private beginSymmetricSession(peer: Peer, now: number): boolean {
    const hs = peer.handshake;
    const keys = deriveSession(hs);
    if (keys === null) return false;
    const kp = new Keypair<Peer>(keys, now, peer);
    this.index.attachKeypair(keys.localIndex, kp);
    hs.localIndex = 0;
    const kps = peer.keypairs;
    const { previous, next, current } = kps;
    if (kp.isInitiator) {
      if (next !== null) {
        kps.next = null;
        kps.previous = next;
        this.deleteKeypair(current);
      } else {
        kps.previous = current;
      }
      this.deleteKeypair(previous);
      kps.current = kp;
    } else {
      kps.next = kp;
      this.deleteKeypair(next);
      kps.previous = null;
      this.deleteKeypair(previous);
    }
    return true;
  }

  private deleteKeypair(kp: Keypair<Peer> | null): void {
    if (kp === null) return;
    this.index.delete(kp.localIndex);
    kp.destroy();
  }

  /** The responder's `next` keypair is confirmed by the first packet that arrives under it. */
  private receivedWithKeypair(peer: Peer, kp: Keypair<Peer>): boolean {
    const kps = peer.keypairs;
    if (kps.next !== kp) return false;
    const old = kps.previous;
    kps.previous = kps.current;
    this.deleteKeypair(old);
    kps.current = kp;
    kps.next = null;
    return true;
  }

  private zeroKeys(peer: Peer, notify: boolean): void {
    const kps = peer.keypairs;
    this.deleteKeypair(kps.current);
    this.deleteKeypair(kps.previous);
    this.deleteKeypair(kps.next);
    kps.current = kps.previous = kps.next = null;
    this.index.delete(peer.handshake.localIndex);
    peer.handshake.localIndex = 0;
    peer.handshake.clear();
    if (notify) this.onEvent({ type: 'keys-zeroed', peer: peer.publicKeyBase64 });
  }

  // ---------------------------------------------------------------- receive path

  private ensureRecvScratch(n: number): void {
    if (n <= this.rCap) return;
    this.rCap = n;
    this.rRanges.offsets = new Uint32Array(n);
    this.rRanges.lengths = new Uint32Array(n);
    this.rKeyBuf = new Uint8Array(n * 32);
    this.rKeyIdx = new Uint32Array(n);
    this.rCounters = new Uint32Array(n * 2);
    this.rOk = new Uint8Array(n);
    this.rSlots = new Uint32Array(n);
    this.rCounterNum = new Float64Array(n);
    this.rKeypairs = new Array<Keypair<Peer> | null>(n).fill(null);
  }

  /**
   * Datagrams received by the bind (each at its slot start, source in addrs). Decrypted packets
   * are written to the TUN from the same batch. Never throws on any input.
   */
  handleDatagrams(batch: PacketBatch): void {
    const n = batch.count;
    this.ensureRecvScratch(n);
    const now = this.clock.now();
    const buf = batch.buf;
    const offsets = batch.offsets;
    const lengths = batch.lengths;
    const rejectAfter = this.timers.rejectAfterTime;
    const r = this.rRanges;
    const epoch = ++this.rEpoch;
    let nKeys = 0;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      const type = messageType(buf, off, len);
      if (type !== MESSAGE_TRANSPORT) {
        if (type === 0) this.drop('invalid-message');
        else this.handleHandshakeMessage(type, buf, off, len, batch.addrs, i, now);
        continue;
      }
      const entry = this.index.get(transportReceiver(buf, off));
      const kp = entry === undefined ? null : entry.keypair;
      if (kp === null) {
        this.drop('unknown-receiver');
        continue;
      }
      if (now - kp.created >= rejectAfter) {
        this.drop('expired-keypair');
        continue;
      }
      const counter = transportCounter(buf, off);
      if (!kp.replay.mayAccept(counter)) {
        this.drop('replay');
        continue;
      }
      if (kp.openEpoch !== epoch) {
        kp.openEpoch = epoch;
        kp.openKeyIndex = nKeys;
        this.rKeyBuf.set(kp.receiveKey, nKeys * 32);
        nKeys++;
      }
      this.rKeyIdx[m] = kp.openKeyIndex;
      this.rCounters[2 * m] = counter >>> 0;
      this.rCounters[2 * m + 1] = Math.floor(counter / 4294967296);
      this.rCounterNum[m] = counter;
      this.rSlots[m] = i;
      r.offsets[m] = off + TRANSPORT_HEADER_SIZE;
      r.lengths[m] = len - TRANSPORT_HEADER_SIZE;
      this.rKeypairs[m] = kp;
      m++;
    }
    if (m === 0) {
      batch.count = 0;
      this.flushStaged();
      return;
    }
    r.buf = buf;
    r.count = m;
    this.aead.open(r, this.rKeyBuf, this.rKeyIdx, this.rCounters, this.rOk, 0, m);

    let out = 0;
    let lastPeer: Peer | null = null;
    for (let j = 0; j < m; j++) {
      const kp = this.rKeypairs[j]!;
      this.rKeypairs[j] = null;
      const peer = kp.peer;
      if (this.rOk[j] === 0) {
        this.drop('decrypt-failed');
        continue;
      }
      if (!kp.replay.validate(this.rCounterNum[j]!)) {
        this.drop('replay');
        continue;
      }
      if (peer.removed) {
        this.drop('unknown-receiver');
        continue;
      }
      const slot = this.rSlots[j]!;
      const plen = r.lengths[j]!;
      const datagramLen = plen + TRANSPORT_HEADER_SIZE + TAG_SIZE;
      if (this.receivedWithKeypair(peer, kp)) {
        this.timersHandshakeComplete(peer, false);
        this.flushQueue.add(peer);
      }
      const ep = peer.endpoint;
      if (ep === null || !ep.matches(batch.addrs, slot)) this.setEndpointFromPacket(peer, batch.addrs, slot);
      peer.rxBytes += datagramLen;
      this.counters.rxPackets++;
      this.counters.rxBytes += datagramLen;
      if (peer !== lastPeer) {
        this.keepKeyFreshReceiving(peer, now);
        this.timersAnyAuthenticatedPacketTraversal(peer, now);
        this.timersAnyAuthenticatedPacketReceived(peer);
        lastPeer = peer;
      }
      const poff = r.offsets[j]!;
      if (plen === 0) continue; // keepalive
      this.timersDataReceived(peer, now);
      const version = buf[poff]! >> 4;
      let ipLen: number;
      if (version === 4) {
        if (plen < 20) {
          this.drop('bad-ip-packet');
          continue;
        }
        ipLen = (buf[poff + 2]! << 8) | buf[poff + 3]!;
        if (ipLen > plen || ipLen < 20) {
          this.drop('bad-ip-packet');
          continue;
        }
      } else if (version === 6) {
        if (plen < 40) {
          this.drop('bad-ip-packet');
          continue;
        }
        ipLen = ((buf[poff + 4]! << 8) | buf[poff + 5]!) + 40;
        if (ipLen > plen) {
          this.drop('bad-ip-packet');
          continue;
        }
      } else {
        this.drop('bad-ip-packet');
        continue;
      }
      if (this.allowedIps.lookupSource(buf, poff, ipLen) !== peer) {
        this.drop('source-not-allowed');
        continue;
      }
      if (this.hooks !== null && !this.hooks.inbound(buf, poff, ipLen, peer)) {
        this.drop('filtered-inbound');
        continue;
      }
      offsets[out] = poff;
      lengths[out] = ipLen;
      out++;
    }
    batch.count = out;
    if (out > 0) this.tunWrite(batch);
    this.flushStaged();
  }

  private flushStaged(): void {
    if (this.flushQueue.size === 0) return;
    const peers = [...this.flushQueue];
    this.flushQueue.clear();
    for (const p of peers) this.sendStagedPackets(p);
  }

  private setEndpointFromPacket(peer: Peer, addrs: Uint8Array, slot: number): void {
    const ep = this.bind.endpointFor(addrs, slot);
    peer.endpoint = ep;
    this.onEvent({ type: 'endpoint-changed', peer: peer.publicKeyBase64, endpoint: ep.toString() });
  }

  private isUnderLoad(now: number): boolean {
    if (now - this.loadWindowStart >= 1000) {
      this.loadWindowStart = now;
      this.loadWindowCount = 0;
    }
    this.loadWindowCount++;
    if (this.loadWindowCount > this.underLoadThreshold) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    return now < this.underLoadUntil;
  }

  /** Force the under-load state for `ms` (tests, and callers that see overload elsewhere). */
  setUnderLoad(ms: number): void {
    this.underLoadUntil = this.clock.now() + ms;
  }

  private handleHandshakeMessage(type: number, buf: Buffer, off: number, len: number, addrs: Uint8Array, slot: number, now: number): void {
    try {
      this.handleHandshakeMessageUnsafe(type, new Uint8Array(buf.subarray(off, off + len)), addrs, slot, now);
    } catch {
      this.drop('handshake-failed');
    }
  }

  private handleHandshakeMessageUnsafe(type: number, msg: Uint8Array, addrs: Uint8Array, slot: number, now: number): void {
    if (type === MESSAGE_COOKIE_REPLY) {
      const entry = this.index.get(readU32LE(msg, 4));
      if (entry === undefined || entry.peer.removed || !entry.peer.cookieGenerator.consumeReply(msg)) {
        this.drop('bad-cookie-reply');
        return;
      }
      this.onEvent({ type: 'cookie-received', peer: entry.peer.publicKeyBase64 });
      return;
    }
    const identity = this.identity;
    const checker = this.cookieChecker;
    if (identity === null || checker === null) {
      this.drop('no-private-key');
      return;
    }
    this.counters.handshakesReceived++;
    if (!checker.checkMac1(msg)) {
      this.drop('bad-mac1');
      return;
    }
    const srcOff = slot * ADDR_SIZE;
    const source = addrs.subarray(srcOff, srcOff + 18);
    if (this.isUnderLoad(now)) {
      if (!checker.checkMac2(msg, source)) {
        const reply = encodeCookieReply(checker.createReply(msg, source));
        const to = this.bind.endpointFor(addrs, slot);
        this.bind.sendOne(reply, to);
        this.counters.cookieRepliesSent++;
        this.drop('cookie-required');
        this.onEvent({ type: 'cookie-reply-sent', to: to.toString() });
        return;
      }
      if (!this.rateLimiter.allow(addrs, srcOff, now)) {
        this.drop('rate-limited');
        return;
      }
    }

    if (type === MESSAGE_INITIATION) {
      if (msg.length !== INITIATION_SIZE) return;
      const opened = openInitiation(identity, msg);
      if (opened === null) {
        this.drop('bad-initiation');
        return;
      }
      const peer = this.peers.get(Buffer.from(opened.peerPublic).toString('base64'));
      if (peer === undefined) {
        this.drop('unknown-peer');
        return;
      }
      const r = consumeInitiation(opened, msg, peer.handshake, now, HANDSHAKE_INITIATION_RATE);
      if (r !== 'ok') {
        this.drop(r === 'replay' ? 'handshake-replay' : r === 'flood' ? 'handshake-flood' : 'bad-initiation');
        return;
      }
      this.timersAnyAuthenticatedPacketTraversal(peer, now);
      this.timersAnyAuthenticatedPacketReceived(peer);
      if (peer.endpoint === null || !peer.endpoint.matches(addrs, slot)) this.setEndpointFromPacket(peer, addrs, slot);
      peer.rxBytes += msg.length;
      this.sendHandshakeResponse(peer);
      return;
    }

    if (type === MESSAGE_RESPONSE) {
      if (msg.length !== RESPONSE_SIZE) return;
      const entry = this.index.get(readU32LE(msg, 8));
      if (entry === undefined || entry.keypair !== null || entry.peer.removed) {
        this.drop('unknown-receiver');
        return;
      }
      const peer = entry.peer;
      if (!consumeResponse(identity, peer.handshake, msg)) {
        this.drop('bad-response');
        return;
      }
      if (peer.endpoint === null || !peer.endpoint.matches(addrs, slot)) this.setEndpointFromPacket(peer, addrs, slot);
      peer.rxBytes += msg.length;
      this.timersAnyAuthenticatedPacketTraversal(peer, now);
      this.timersAnyAuthenticatedPacketReceived(peer);
      if (!this.beginSymmetricSession(peer, now)) {
        this.drop('handshake-failed');
        return;
      }
      this.timersSessionDerived(peer, now);
      this.timersHandshakeComplete(peer, true);
      // key confirmation for the responder: staged packets, or a keepalive
      if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
      this.flushQueue.add(peer);
    }
  }

  // ---------------------------------------------------------------- timers (wireguard-go timers.go)

  private timersDataSent(peer: Peer, now: number): void {
    const t = peer.timers;
    if (t.newHandshake === Infinity) t.newHandshake = now + this.timers.keepaliveTimeout + this.timers.rekeyTimeout + jitter(this.timers.rekeyTimeoutJitterMax);
  }

  private timersDataReceived(peer: Peer, now: number): void {
    const t = peer.timers;
    if (t.sendKeepalive === Infinity) t.sendKeepalive = now + this.timers.keepaliveTimeout;
    else t.needAnotherKeepalive = true;
  }

  private timersAnyAuthenticatedPacketSent(peer: Peer): void {
    peer.timers.sendKeepalive = Infinity;
  }

  private timersAnyAuthenticatedPacketReceived(peer: Peer): void {
    peer.timers.newHandshake = Infinity;
  }

  private timersHandshakeComplete(peer: Peer, initiator: boolean): void {
    const t = peer.timers;
    t.retransmitHandshake = Infinity;
    t.handshakeAttempts = 0;
    t.sentLastMinuteHandshake = false;
    peer.lastHandshakeWallMs = Number(this.clock.wallNanos() / 1_000_000n);
    peer.handshakesCompleted++;
    this.onEvent({ type: 'handshake-complete', peer: peer.publicKeyBase64, initiator });
  }

  private timersSessionDerived(peer: Peer, now: number): void {
    peer.timers.zeroKeyMaterial = now + this.timers.rejectAfterTime * 3;
  }

  private timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
    if (peer.persistentKeepalive > 0) peer.timers.persistentKeepalive = now + peer.persistentKeepalive * 1000;
  }

  /** Run every timer that is due. Called by the device's ticker; tests may call it directly. */
  tick(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const peer of [...this.peers.values()]) {
      const t = peer.timers;
      if (now >= t.retransmitHandshake) {
        t.retransmitHandshake = Infinity;
        this.expiredRetransmitHandshake(peer);
      }
      if (now >= t.sendKeepalive) {
        t.sendKeepalive = Infinity;
        this.sendKeepalive(peer);
        if (t.needAnotherKeepalive) {
          t.needAnotherKeepalive = false;
          t.sendKeepalive = now + this.timers.keepaliveTimeout;
        }
      }
      if (now >= t.newHandshake) {
        t.newHandshake = Infinity;
        this.sendHandshakeInitiation(peer, false);
      }
      if (now >= t.zeroKeyMaterial) {
        t.zeroKeyMaterial = Infinity;
        this.zeroKeys(peer, true);
      }
      if (now >= t.persistentKeepalive) {
        t.persistentKeepalive = Infinity;
        if (peer.persistentKeepalive > 0) this.sendKeepalive(peer);
      }
    }
    this.rateLimiter.sweep(now);
  }

  private expiredRetransmitHandshake(peer: Peer): void {
    const t = peer.timers;
    if (t.handshakeAttempts > this.timers.maxTimerHandshakes) {
      t.sendKeepalive = Infinity;
      if (peer.staged.length > 0) {
        this.counters.drops['staged-expired'] += peer.staged.length;
        peer.staged = [];
      }
      if (t.zeroKeyMaterial === Infinity) t.zeroKeyMaterial = this.clock.now() + this.timers.rejectAfterTime * 3;
      this.onEvent({ type: 'handshake-gave-up', peer: peer.publicKeyBase64, attempts: t.handshakeAttempts + 1 });
      return;
    }
    t.handshakeAttempts++;
    this.sendHandshakeInitiation(peer, true);
  }
}

/**
 * The state of a WireGuard device that every path reads and writes: peers, the allowed-IPs and
 * index tables, our static identity, counters, the under-load window and the per-batch scratch
 * arrays of the two transport paths. No behaviour beyond a few one-line helpers: the paths are
 * free functions taking this object (send.ts, receive.ts, handshake.ts, keypair-rotation.ts,
 * timers.ts),
 * and device.ts wires them behind the Device class.
 */
import { PacketBatch } from '../packet-batch.js';
import type { Bind, Endpoint } from './bind.js';
import { MAX_STAGED_PACKETS, REJECT_AFTER_MESSAGES, UNDER_LOAD_HANDSHAKES_PER_SECOND, timerConfig, type TimerConfig } from './constants.js';
import type { CookieChecker, Rng } from './cookie.js';
import { newDropCounters, type DropCounters, type DropReason } from './counters.js';
import { IndexTable } from './index-table.js';
import type { Keypair } from './keypair.js';
import type { StaticIdentity } from './noise.js';
import type { Peer } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { systemClock, type Clock, type Ticker } from '../../util/clock.js';
import { AllowedIps } from './allowed-ips.js';
import { createAeadBatch, type AeadBatch } from '../crypto/aead-batch.js';
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
 * Per-packet hooks for the packet filter: synchronous, must not keep the buffer.
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

export interface DeviceCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  handshakesReceived: number;
  /** Initiations left unanswered because ours crossed them (we keep ours: see handshake.ts). */
  initiationsCrossed: number;
  cookieRepliesSent: number;
  drops: DropCounters;
}

/** Packet ranges handed to the AEAD (a PacketRanges whose arrays the device owns). */
export interface MutableRanges {
  buf: Uint8Array;
  offsets: Uint32Array;
  lengths: Uint32Array;
  count: number;
}

function emptyRanges(): MutableRanges {
  return { buf: new Uint8Array(0), offsets: new Uint32Array(0), lengths: new Uint32Array(0), count: 0 };
}

/**
 * One batch's AEAD job, as both transport paths build it: the packet ranges, a key table with
 * each keypair's key once per batch (a keypair remembers the batch epoch it registered in), the
 * 64-bit nonce counter and the result of each packet. Arrays grow to the largest batch seen and
 * never shrink, so a batch allocates nothing.
 */
export class AeadScratch {
  cap = 0;
  epoch = 0;
  nKeys = 0;
  readonly ranges = emptyRanges();
  keyBuf = new Uint8Array(0);
  keyIdx = new Uint32Array(0);
  counters = new Uint32Array(0);
  ok = new Uint8Array(0);

  /** Start a batch of up to `n` packets; returns its epoch. */
  begin(n: number): number {
    this.ensure(n);
    this.nKeys = 0;
    return ++this.epoch;
  }

  /** Grow to hold `n` packets. */
  ensure(n: number): void {
    if (n <= this.cap) return;
    this.cap = n;
    this.ranges.offsets = new Uint32Array(n);
    this.ranges.lengths = new Uint32Array(n);
    this.keyBuf = new Uint8Array(n * 32);
    this.keyIdx = new Uint32Array(n);
    this.counters = new Uint32Array(n * 2);
    this.ok = new Uint8Array(n);
    this.grow(n);
  }

  /** The path's own per-packet arrays. */
  protected grow(_n: number): void {}

  /** Put a key in this batch's table; returns its index. */
  addKey(key: Uint8Array): number {
    const i = this.nKeys++;
    this.keyBuf.set(key, i * 32);
    return i;
  }

  /** Packet j of the job: bytes [off, off+len) of the batch buffer, key `keyIndex`, nonce counter `counter`. */
  queue(j: number, keyIndex: number, counter: number, off: number, len: number): void {
    this.keyIdx[j] = keyIndex;
    this.counters[2 * j] = counter >>> 0;
    this.counters[2 * j + 1] = Math.floor(counter / 4294967296);
    this.ranges.offsets[j] = off;
    this.ranges.lengths[j] = len;
  }

  /** Seal packets 0..count-1 in place (`ok[j]` says which succeeded). */
  seal(aead: AeadBatch, buf: Uint8Array, count: number): void {
    this.ranges.buf = buf;
    this.ranges.count = count;
    aead.seal(this.ranges, this.keyBuf, this.keyIdx, this.counters, this.ok, 0, count);
  }

  /** Open packets 0..count-1 in place (`ok[j]` says which authenticated). */
  open(aead: AeadBatch, buf: Uint8Array, count: number): void {
    this.ranges.buf = buf;
    this.ranges.count = count;
    aead.open(this.ranges, this.keyBuf, this.keyIdx, this.counters, this.ok, 0, count);
  }
}

/** Send path: plus where each sealed packet goes. */
export class SendScratch extends AeadScratch {
  eps: Array<Endpoint | null> = [];
  peers: Array<Peer | null> = [];

  protected override grow(n: number): void {
    this.eps = new Array<Endpoint | null>(n).fill(null);
    this.peers = new Array<Peer | null>(n).fill(null);
  }
}

/** Receive path: plus where each opened packet came from and its counter for the replay window. */
export class RecvScratch extends AeadScratch {
  slots = new Uint32Array(0);
  counterNum = new Float64Array(0);
  keypairs: Array<Keypair<Peer> | null> = [];

  protected override grow(n: number): void {
    this.slots = new Uint32Array(n);
    this.counterNum = new Float64Array(n);
    this.keypairs = new Array<Keypair<Peer> | null>(n).fill(null);
  }
}

export class DeviceState {
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  readonly counters: DeviceCounters = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    handshakesReceived: 0,
    initiationsCrossed: 0,
    cookieRepliesSent: 0,
    drops: newDropCounters(),
  };
  readonly timers: TimerConfig;
  readonly bind: Bind;
  readonly tunWrite: (batch: PacketBatch) => void;
  readonly mtu: number;
  readonly aead: AeadBatch;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly onEvent: (e: DeviceEvent) => void;
  readonly index: IndexTable<Peer>;
  readonly rateLimiter = new RateLimiter();
  readonly underLoadThreshold: number;
  hooks: PacketHooks | null;
  identity: StaticIdentity | null = null;
  cookieChecker: CookieChecker | null = null;
  /** The device's timer tick while started (Device.start); null before and after close. */
  tickFn: (() => void) | null = null;
  /** When the one pending wake-up fires (Infinity: none pending). */
  wakeAt = Infinity;
  private wakeTimer: Ticker | null = null;
  closed = false;

  // under-load accounting: handshake messages seen in the current one-second window
  loadWindowStart = 0;
  loadWindowCount = 0;
  underLoadUntil = -Infinity;

  readonly sendScratch = new SendScratch();
  readonly recvScratch = new RecvScratch();
  /** Staged packets are sealed from here, never from a batch owned by the TUN or the bind. */
  readonly stagedBatch = new PacketBatch(MAX_STAGED_PACKETS);
  /** Peers whose staged packets go out once the current receive batch is done. */
  readonly flushQueue = new Set<Peer>();

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
    this.sendScratch.ensure(64);
    this.recvScratch.ensure(64);
  }

  /**
   * A timer deadline was armed: make sure the tick runs by then. One wake-up is pending at a
   * time, for the earliest deadline armed; deadlines moved later (the hot path does that per
   * packet) cost a comparison, and the tick that finds nothing due sleeps until the next one.
   * So an idle device wakes only when a timer is due, whatever the number of peers.
   */
  wakeBy(deadline: number): void {
    if (deadline >= this.wakeAt) return;
    this.wakeAt = deadline;
    const fn = this.tickFn;
    if (fn === null) return; // not started: start() schedules
    this.wakeTimer?.cancel();
    this.wakeTimer = this.clock.after(Math.max(0, Math.ceil(deadline - this.clock.now())), fn);
  }

  /** The pending wake-up fired (the tick runs now) or the device stops: none pending. */
  clearWake(): void {
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    this.wakeAt = Infinity;
  }

  drop(reason: DropReason): void {
    this.counters.drops[reason]++;
  }

  /** A keypair that may still seal: under the message limit and younger than REJECT_AFTER_TIME. */
  sendable(kp: Keypair<Peer> | null, now: number): kp is Keypair<Peer> {
    return kp !== null && kp.sendCounter < REJECT_AFTER_MESSAGES && now - kp.created < this.timers.rejectAfterTime;
  }

  /**
   * An authenticated packet came from another address than the peer's endpoint: roam there. The
   * current endpoint may take the new source as its own (a magic socket's per-peer endpoint);
   * otherwise the bind makes one for it.
   */
  setEndpointFromPacket(peer: Peer, addrs: Uint8Array, slot: number): void {
    const ep = peer.endpoint?.roamed(addrs, slot) ?? this.bind.endpointFor(addrs, slot);
    peer.endpoint = ep;
    this.onEvent({ type: 'endpoint-changed', peer: peer.publicKeyBase64, endpoint: ep.toString() });
  }
}

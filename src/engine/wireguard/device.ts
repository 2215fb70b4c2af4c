/**
 * The WireGuard device: the object the engine holds. It wires the pieces that wireguard-go keeps
 * in its device/ package, each a module of free functions over the shared DeviceState:
 *
 *   send.ts       TUN batch → route → seal in place → bind; staged packets and keepalives
 *   receive.ts    bind batch → open in place → checks → TUN; hands handshake messages over
 *   handshake.ts  sending and consuming handshake messages, cookies, the under-load state
 *   keypair-rotation.ts  keypairs moving between current, previous and next
 *   timers.ts     the hooks that arm the per-peer timers, and the tick that fires them
 *
 * and holds the configuration API (identity, peers, statistics). Everything runs on the event
 * loop, synchronously per batch: no promises or timers per packet, no per-packet Buffers on the
 * transport paths (handshakes may allocate). Every dropped packet is counted under a reason
 * (counters.ts).
 */
import type { PacketBatch } from '../packet-batch.js';
import type { Endpoint } from './bind.js';
import type { TimerConfig } from './constants.js';
import { CookieChecker } from './cookie.js';
import { DeviceState, type DeviceCounters, type DeviceOptions, type PacketHooks } from './device-state.js';
import { sendHandshakeInitiation } from './handshake.js';
import type { IpPrefix } from '../../util/prefix.js';
import { zeroKeys } from './keypair-rotation.js';
import { staticIdentity } from './noise.js';
import { Peer } from './peer.js';
import { receiveDatagrams } from './receive.js';
import { sealAndSend, sendKeepalive } from './send.js';
import { nextDeadline, tick, type TimerActions } from './timers.js';
import type { AllowedIps } from './allowed-ips.js';
import type { AeadBatch } from '../crypto/aead-batch.js';

export type { DeviceCounters, DeviceEvent, DeviceOptions, PacketHooks } from './device-state.js';

/** What the expired timers do; one constant object, so the calls through it stay monomorphic. */
const TIMER_ACTIONS: TimerActions = { sendKeepalive, sendHandshakeInitiation };

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

export class Device {
  readonly peers: Map<string, Peer>;
  readonly allowedIps: AllowedIps<Peer>;
  readonly counters: DeviceCounters;
  readonly timers: TimerConfig;
  /** The transport AEAD in use (its stats say how batches were shared between threads). */
  readonly aead: AeadBatch;
  private readonly s: DeviceState;

  constructor(opts: DeviceOptions) {
    this.s = new DeviceState(opts);
    this.aead = this.s.aead;
    this.peers = this.s.peers;
    this.allowedIps = this.s.allowedIps;
    this.counters = this.s.counters;
    this.timers = this.s.timers;
  }

  /**
   * Start the timers (the tick runs when one is due). Packet handlers may be called before or
   * after.
   */
  start(): void {
    const s = this.s;
    if (s.tickFn !== null || s.closed) return;
    s.tickFn = () => this.tick();
    s.clearWake();
    s.wakeBy(nextDeadline(s));
    // like wireguard-go's device up: peers with a persistent keepalive say hello at once
    for (const peer of s.peers.values()) if (peer.persistentKeepalive > 0) sendKeepalive(s, peer);
  }

  close(): void {
    const s = this.s;
    s.closed = true;
    s.tickFn = null;
    s.clearWake();
    for (const p of [...s.peers.values()]) this.removePeer(p.publicKey);
    s.index.clear();
  }

  /** Install or remove the packet filter hooks (takes effect with the next packet). */
  setHooks(hooks: PacketHooks | null): void {
    this.s.hooks = hooks;
  }

  get publicKey(): Uint8Array | null {
    return this.s.identity?.publicKey ?? null;
  }

  // ---------------------------------------------------------------- packets and time

  /** Packets read from the TUN (each at slot start + HEADROOM). The batch is reused for sending. */
  handleTunBatch(batch: PacketBatch): void {
    sealAndSend(this.s, batch, null);
  }

  /**
   * Datagrams received by the bind (each at its slot start, source in addrs). Decrypted packets
   * are written to the TUN from the same batch. Never throws on any input.
   */
  handleDatagrams(batch: PacketBatch): void {
    receiveDatagrams(this.s, batch);
  }

  /** Run every timer that is due. Called when one is due; tests may call it directly. */
  tick(): void {
    tick(this.s, TIMER_ACTIONS);
  }

  /** Force the under-load state for `ms` (tests, and callers that see overload elsewhere). */
  setUnderLoad(ms: number): void {
    this.s.underLoadUntil = this.s.clock.now() + ms;
  }

  // ---------------------------------------------------------------- configuration

  /** Set (or clear) our static key. Setting the key already in use changes nothing. */
  setPrivateKey(privateKey: Uint8Array | null): void {
    const s = this.s;
    const next = privateKey === null ? null : staticIdentity(privateKey);
    const cur = s.identity;
    if (next !== null && cur !== null && Buffer.compare(Buffer.from(next.publicKey), Buffer.from(cur.publicKey)) === 0) return;
    s.identity = next;
    s.cookieChecker = next === null ? null : new CookieChecker(next.publicKey, s.rng, () => s.clock.now(), s.timers.cookieRefreshTime);
    for (const peer of s.peers.values()) {
      zeroKeys(s, peer, false);
      this.precompute(peer);
      peer.handshake.lastSentHandshake = -Infinity; // a new identity may handshake at once
    }
  }

  private precompute(peer: Peer): void {
    const identity = this.s.identity;
    const self = identity !== null && Buffer.compare(Buffer.from(identity.publicKey), Buffer.from(peer.publicKey)) === 0;
    peer.handshake.precompute(self ? null : identity);
  }

  /** Add a peer, or update it when its key is already known. */
  upsertPeer(s: PeerSettings): Peer {
    if (s.publicKey.length !== 32) throw new RangeError('public key must be 32 bytes');
    const key = Buffer.from(s.publicKey).toString('base64');
    let peer = this.peers.get(key);
    const isNew = peer === undefined;
    if (peer === undefined) {
      peer = new Peer(new Uint8Array(s.publicKey), () => this.s.clock.now(), this.timers.cookieRefreshTime);
      this.peers.set(key, peer);
      this.precompute(peer);
    }
    if (s.presharedKey !== undefined) {
      peer.handshake.presharedKey = s.presharedKey === null ? new Uint8Array(32) : new Uint8Array(s.presharedKey);
    }
    // the same address again keeps the current object (a network map re-applied changes nothing)
    if (s.endpoint !== undefined && (s.endpoint === null || peer.endpoint === null || !s.endpoint.equals(peer.endpoint))) {
      peer.endpoint = s.endpoint;
    }
    if (s.allowedIps !== undefined) {
      this.allowedIps.removeValue(peer);
      for (const p of s.allowedIps) this.allowedIps.insert(p, peer);
    }
    if (s.persistentKeepalive !== undefined) {
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = s.persistentKeepalive;
      if (s.persistentKeepalive > 0 && (was === 0 || isNew) && this.s.tickFn !== null) sendKeepalive(this.s, peer);
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
    zeroKeys(this.s, peer, false);
    this.s.index.deletePeer(peer);
    peer.timers.stopAll();
    peer.staged = [];
    this.s.flushQueue.delete(peer);
    return true;
  }

  getPeer(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('base64'));
  }

  peerStats(): PeerStats[] {
    const now = this.s.clock.now();
    return [...this.peers.values()].map((p) => ({
      publicKey: p.publicKeyBase64,
      endpoint: p.endpoint === null ? null : p.endpoint.toString(),
      allowedIps: this.allowedIps.prefixesOf(p),
      lastHandshake: p.lastHandshakeWallMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive,
      hasSession: this.s.sendable(p.keypairs.current, now),
      handshakes: p.handshakesCompleted,
    }));
  }
}

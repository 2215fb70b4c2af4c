/**
 * The magic socket: one UDP socket carrying WireGuard, disco and STUN, plus relay connections,
 * behind the WireGuard device's Bind interface (SPEC 6.3).
 *
 * Demultiplexing by first bytes: WireGuard (type 1–4 then three zero bytes) goes to the device;
 * disco (the 6-byte magic) to the peer that owns the sender's disco key; STUN responses to the
 * StunClient. The device sees peers by key: each peer with a disco key is one PeerEndpoint
 * (endpoint.ts) that owns the path choice; peers without one (plain WireGuard) get ordinary
 * address endpoints, as do packets from addresses nobody claims — so handshakes from
 * non-magicsock peers still work.
 *
 * Hot path: a direct-path send is an `instanceof`, two field reads and a 20-byte address copy
 * per packet; a receive is the 4-byte demux test (the device's `matches` then compares the
 * source with the peer's best address). No allocation, no promise, no timer per packet.
 *
 * Relay: packets come back tagged with a synthetic source (addr.ts) so `matches` and
 * `endpointFor` work for them. Endpoint discovery (netcheck.ts) runs STUN through this socket
 * every 20–26 s (5 s while UDP seems blocked, soon after a direct path dies), collects local
 * interface addresses, classifies the NAT and picks the home relay by latency.
 */
import { networkInterfaces } from 'node:os';
import { randomBytes } from 'node:crypto';
import { MeshdError } from '../../errors.js';
import { hexOf as hexKey, sameBytes } from '../../util/bytes.js';
import { boxPublicKey, generateBoxKeyPair } from '../crypto/nacl-box.js';
import { ADDR_SIZE, PacketBatch } from '../packet-batch.js';
import { openBatchUdpSocket, type BatchUdpSocket, type UdpImplementation, type UdpStats } from '../udp/batch-udp-socket.js';
import { AddrEndpoint } from '../wireguard/addr-endpoint.js';
import type { Bind, Endpoint, ReceiveHandler } from '../wireguard/bind.js';
import { systemClock, type Ticker } from '../wireguard/timers.js';
import {
  addrAt,
  isRelaySource,
  parseAddr,
  relaySourceId,
  v4Key,
  writeRelaySource,
  type ParsedAddr,
} from './addr.js';
import {
  RESTUN_MAX_MS,
  RESTUN_MIN_MS,
  RESTUN_NO_UDP_MS,
  RESTUN_ON_PATH_LOSS_MIN_MS,
  SESSION_ACTIVE_TIMEOUT_MS,
  STUN_TIMEOUT_MS,
  TICK_MS,
} from './constants.js';
import {
  DiscoError,
  discoSender,
  discoSharedKey,
  isDiscoPacket,
  openDiscoPacket,
  sealDiscoPacket,
  type DiscoMessage,
} from './disco.js';
import { PeerEndpoint, type Candidate, type EndpointEvent, type EndpointIo, type EndpointStatus } from './endpoint.js';
import { resolveStunTargets, runNetcheck, type NetcheckReport, type StunProbe } from './netcheck.js';
import { RelaySet, normalizeRelayUrl, type RelayConfig, type RelayStatus } from './relay-set.js';
import { StunClient, type IpPort, type NatMapping } from './stun.js';

export type { RelayConfig } from './relay-set.js';

export interface MagicClock {
  now(): number;
  every(ms: number, fn: () => void): Ticker;
}

export type MagicLog = (event: string, fields: Record<string, unknown>) => void;

export interface MagicSockOptions {
  /** Our WireGuard private key (X25519): the relays route to its public key. */
  privateKey: Uint8Array;
  /** Our disco private key; a fresh one per run when absent. */
  discoPrivateKey?: Uint8Array;
  /** UDP port (0 = ephemeral; when taken, falls back to ephemeral). */
  port?: number;
  /** Bind address (default '::', falling back to '0.0.0.0'). */
  address?: string;
  implementation?: 'auto' | UdpImplementation;
  /** Interfaces whose addresses are not local endpoints (the TUN). */
  excludeInterfaces?: readonly string[];
  /** Addresses that are never local endpoints (e.g. inside the mesh prefixes). */
  excludeIp?: (ip: string) => boolean;
  clock?: MagicClock;
  log?: MagicLog;
  stunTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface MagicPeerConfig {
  publicKey: Uint8Array;
  /** null: a plain WireGuard peer (first endpoint used as is, no disco, no relay). */
  discoKey: Uint8Array | null;
  endpoints: readonly string[];
  /** The peer's home relay URL (null: reach it through ours). */
  homeRelay?: string | null;
}

export interface LocalEndpoints {
  /** "ip:port" as STUN servers saw us. */
  publicEndpoints: string[];
  /** "ip:port" of our interface addresses with the socket's port. */
  localEndpoints: string[];
  natType: NatMapping;
  /** Base64 disco public key. */
  discoKey: string;
  preferredRelay: string | null;
}

export interface MagicSockCounters {
  wgReceived: number;
  discoReceived: number;
  discoUnknownSender: number;
  discoBad: number;
  stunReceived: number;
  unknownDatagrams: number;
  relayWgReceived: number;
  relayDiscoReceived: number;
  relayUnknownPeer: number;
  directSent: number;
  relaySent: number;
  relayDropped: number;
  unroutable: number;
}

export interface MagicPeerStatus extends EndpointStatus {
  publicKey: string;
}

export interface MagicSockStatus {
  listenPort: number;
  udp: UdpImplementation;
  discoKey: string;
  publicEndpoints: string[];
  localEndpoints: string[];
  natType: NatMapping;
  /** Some STUN server answered in the last discovery (null: none asked yet). */
  udpWorks: boolean | null;
  homeRelay: string | null;
  relays: RelayStatus[];
  stun: StunProbe[];
  lastDiscovery: string | null;
  counters: MagicSockCounters;
  socket: UdpStats;
  peers: MagicPeerStatus[];
}

function b64(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('base64');
}

/** The byte test the spec gives for WireGuard: type 1–4, then three zero bytes. */
function isWireGuardAt(buf: Uint8Array, o: number, len: number): boolean {
  const t = buf[o]!;
  return len >= 4 && t >= 1 && t <= 4 && buf[o + 1] === 0 && buf[o + 2] === 0 && buf[o + 3] === 0;
}

async function openSocket(opts: MagicSockOptions): Promise<BatchUdpSocket> {
  const ports = opts.port !== undefined && opts.port !== 0 ? [opts.port, 0] : [0];
  const addresses = opts.address !== undefined ? [opts.address] : ['::', '0.0.0.0'];
  let last: unknown;
  for (const address of addresses) {
    for (const port of ports) {
      try {
        return await openBatchUdpSocket({
          address,
          port,
          ...(opts.implementation ? { implementation: opts.implementation } : {}),
          ...(opts.env ? { env: opts.env } : {}),
        });
      } catch (e) {
        last = e;
      }
    }
  }
  throw last instanceof MeshdError ? last : new MeshdError('E_ENGINE', `cannot open the UDP socket: ${(last as Error)?.message}`, { cause: last });
}

export class MagicSock implements Bind {
  readonly discoPublicKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly counters: MagicSockCounters = {
    wgReceived: 0,
    discoReceived: 0,
    discoUnknownSender: 0,
    discoBad: 0,
    stunReceived: 0,
    unknownDatagrams: 0,
    relayWgReceived: 0,
    relayDiscoReceived: 0,
    relayUnknownPeer: 0,
    directSent: 0,
    relaySent: 0,
    relayDropped: 0,
    unroutable: 0,
  };
  private readonly discoPrivateKey: Uint8Array;
  private readonly clock: MagicClock;
  private readonly log: MagicLog;
  private readonly rx = new PacketBatch();
  private readonly relayRx = new PacketBatch(1);
  /** sendOne's batch. */
  private readonly one = new PacketBatch(1);
  /** Disco, STUN and sprayed copies (never the batch being sent). */
  private readonly raw = new PacketBatch(1);
  private handler: ReceiveHandler | null = null;
  private readonly stun: StunClient;
  private readonly relays: RelaySet;
  private readonly io: EndpointIo;
  private ticker: Ticker | null = null;
  private closed = false;

  private nextId = 1;
  private readonly byKey = new Map<string, PeerEndpoint>();
  private readonly byDisco = new Map<string, PeerEndpoint>();
  private readonly byId = new Map<number, PeerEndpoint>();
  private readonly byV4 = new Map<number, PeerEndpoint>();
  private readonly byOther = new Map<string, PeerEndpoint>();
  private readonly plainPeers = new Map<string, Endpoint | null>();
  private readonly active = new Set<PeerEndpoint>();

  // Endpoint discovery
  private stunServers: string[] = [];
  private configuredHome: string | null = null;
  private publicEndpoints: string[] = [];
  private localEndpoints: string[] = [];
  private ourEndpointList: IpPort[] = [];
  private natType: NatMapping = 'unknown';
  private udpWorks: boolean | null = null;
  private lastReport: NetcheckReport | null = null;
  private lastDiscoveryAt: Date | null = null;
  private lastDiscoveryStart = -Infinity;
  private discovering: Promise<void> | null = null;
  private discoverAgain = false;
  private discoveryTimer: NodeJS.Timeout | null = null;
  private readonly endpointListeners = new Set<(e: LocalEndpoints) => void>();
  private lastPublished = '';
  private readonly excluded: Set<string>;
  private readonly excludeIp: (ip: string) => boolean;
  private readonly stunTimeoutMs: number;

  private constructor(
    private readonly socket: BatchUdpSocket,
    privateKey: Uint8Array,
    opts: MagicSockOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? (() => undefined);
    this.publicKey = boxPublicKey(privateKey);
    if (opts.discoPrivateKey !== undefined) {
      if (opts.discoPrivateKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'disco private key must be 32 bytes');
      this.discoPrivateKey = new Uint8Array(opts.discoPrivateKey);
    } else {
      this.discoPrivateKey = generateBoxKeyPair().privateKey;
    }
    this.discoPublicKey = boxPublicKey(this.discoPrivateKey);
    this.excluded = new Set(opts.excludeInterfaces ?? []);
    this.excludeIp = opts.excludeIp ?? (() => false);
    this.stunTimeoutMs = opts.stunTimeoutMs ?? STUN_TIMEOUT_MS;
    this.stun = new StunClient({ send: (packet, port, host) => this.sendStun(packet, port, host) });
    this.relays = new RelaySet({
      privateKey,
      publicKey: this.publicKey,
      onPacket: (src, packet) => this.onRelayPacket(src, packet),
      log: (event, fields) => this.log(event, fields),
    });
    this.io = {
      now: () => this.clock.now(),
      nodeKey: this.publicKey,
      sendDisco: (ep, to, msg) => this.sendDisco(ep, to, msg),
      ourEndpoints: () => this.ourEndpointList,
      relayUrlFor: (ep) => this.relayUrlFor(ep),
      ownerOf: (addrs, i) => this.ownerOf(addrs, i),
      candidateAdded: (ep, c) => this.mapCandidate(ep, c),
      candidateRemoved: (ep, c) => this.unmapCandidate(ep, c),
      activate: (ep) => void this.active.add(ep),
      event: (ep, e) => this.onEndpointEvent(ep, e),
    };
    this.refreshLocalEndpoints();
    this.rebuildOurEndpoints();
  }

  static async open(opts: MagicSockOptions): Promise<MagicSock> {
    if (!(opts.privateKey instanceof Uint8Array) || opts.privateKey.length !== 32) {
      throw new MeshdError('E_CONFIG_INVALID', 'private key must be 32 bytes');
    }
    const socket = await openSocket(opts);
    return new MagicSock(socket, new Uint8Array(opts.privateKey), opts);
  }

  // ------------------------------------------------------------------------------------- Bind

  get localPort(): number {
    return this.socket.port;
  }

  get kind(): UdpImplementation {
    return this.socket.kind;
  }

  start(handler: ReceiveHandler): void {
    this.handler = handler;
    this.socket.startReceiving(this.rx, (batch) => this.onUdpBatch(batch));
    this.ticker ??= this.clock.every(TICK_MS, () => this.tick());
    void this.discover('start');
  }

  endpointFor(addrs: Uint8Array, i: number): Endpoint {
    if (isRelaySource(addrs, i)) {
      const ep = this.byId.get(relaySourceId(addrs, i));
      if (ep !== undefined) return ep;
    }
    return this.ownerOf(addrs, i) ?? AddrEndpoint.fromAddrs(addrs, i);
  }

  parseEndpoint(s: string): Endpoint {
    return AddrEndpoint.parse(s);
  }

  send(batch: PacketBatch, endpoints: ReadonlyArray<Endpoint | null>): void {
    const n = batch.count;
    const addrs = batch.addrs;
    const offsets = batch.offsets;
    const lengths = batch.lengths;
    let now = -1;
    let out = 0;
    for (let i = 0; i < n; i++) {
      const ep = endpoints[i];
      let to: Uint8Array | null = null;
      if (ep instanceof PeerEndpoint) {
        if (now < 0) now = this.clock.now();
        if (ep.lastSend !== now) ep.noteSend(now);
        to = ep.bestAddr;
        if (to === null || now >= ep.trustUntil) this.sendSlow(ep, batch, i, now);
      } else if (ep instanceof AddrEndpoint) {
        to = ep.addr;
      } else {
        this.counters.unroutable++;
      }
      if (to === null) continue;
      if (out !== i) {
        offsets[out] = offsets[i]!;
        lengths[out] = lengths[i]!;
      }
      addrs.set(to, out * ADDR_SIZE);
      out++;
    }
    if (out > 0) {
      this.counters.directSent += out;
      this.socket.sendBatch(batch, 0, out);
    }
  }

  sendOne(data: Uint8Array, endpoint: Endpoint): void {
    const b = this.one;
    if (data.length > b.slotSize) {
      this.counters.unroutable++;
      return;
    }
    b.reset(0);
    b.push(data, 0);
    this.send(b, [endpoint]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ticker?.cancel();
    this.ticker = null;
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    this.discoveryTimer = null;
    this.stun.close();
    for (const ep of this.byKey.values()) ep.close();
    this.active.clear();
    this.socket.stopReceiving();
    await Promise.allSettled([this.relays.stop(), this.socket.close()]);
  }

  // ------------------------------------------------------------------------------------- peers

  /**
   * Add or update a peer. Returns the Endpoint the WireGuard device should use for it: the
   * peer's PeerEndpoint (same object across updates) when it has a disco key, else a plain
   * address endpoint for its first endpoint (or null).
   */
  upsertPeer(cfg: MagicPeerConfig): Endpoint | null {
    if (cfg.publicKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'peer public key must be 32 bytes');
    const key = b64(cfg.publicKey);
    if (cfg.discoKey === null) {
      this.removeMagicPeer(key);
      let ep: Endpoint | null = null;
      for (const s of cfg.endpoints) {
        const a = parseAddr(s);
        if (a !== null) {
          ep = AddrEndpoint.parse(a.key);
          break;
        }
      }
      this.plainPeers.set(key, ep);
      return ep;
    }
    if (cfg.discoKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'peer disco key must be 32 bytes');
    this.plainPeers.delete(key);
    let ep = this.byKey.get(key);
    if (ep === undefined) {
      ep = new PeerEndpoint(this.io, this.nextId++, cfg.publicKey);
      this.byKey.set(key, ep);
      this.byId.set(ep.id, ep);
    }
    const oldDisco = ep.discoKey;
    if (oldDisco === null || !sameBytes(oldDisco, cfg.discoKey)) {
      if (oldDisco !== null) this.byDisco.delete(hexKey(oldDisco));
      let shared: Uint8Array;
      try {
        shared = discoSharedKey(this.discoPrivateKey, cfg.discoKey);
      } catch (e) {
        throw new MeshdError('E_CONFIG_INVALID', `peer ${key}: ${(e as Error).message}`);
      }
      ep.sharedKey = shared;
      this.byDisco.set(hexKey(cfg.discoKey), ep);
    }
    ep.setConfig({
      discoKey: cfg.discoKey,
      endpoints: cfg.endpoints,
      relayUrl: cfg.homeRelay ? normalizeRelayUrl(cfg.homeRelay) : null,
    });
    return ep;
  }

  removePeer(publicKey: Uint8Array): void {
    const key = b64(publicKey);
    this.plainPeers.delete(key);
    this.removeMagicPeer(key);
  }

  private removeMagicPeer(key: string): void {
    const ep = this.byKey.get(key);
    if (ep === undefined) return;
    ep.close();
    this.byKey.delete(key);
    this.byId.delete(ep.id);
    if (ep.discoKey !== null && this.byDisco.get(hexKey(ep.discoKey)) === ep) this.byDisco.delete(hexKey(ep.discoKey));
    this.active.delete(ep);
  }

  /** The PeerEndpoint of a peer (base64 key), if it has one. */
  peerEndpoint(publicKeyBase64: string): PeerEndpoint | undefined {
    return this.byKey.get(publicKeyBase64);
  }

  /**
   * The device took a plain address endpoint for a magic peer (an authenticated packet came from
   * an address we did not know: the peer roamed, or its NAT rebound). Learn the address as a
   * candidate and return the PeerEndpoint to put back; null when the peer is not ours.
   */
  adoptRoamed(publicKeyBase64: string, endpoint: Endpoint): PeerEndpoint | null {
    const ep = this.byKey.get(publicKeyBase64);
    if (ep === undefined || endpoint === ep) return null;
    if (endpoint instanceof AddrEndpoint) ep.onWireGuardFrom(addrAt(endpoint.addr, 0), this.clock.now());
    return ep;
  }

  // ------------------------------------------------------------------------------------- relays / STUN config

  /** Set the relays and STUN servers; homeRelay fixes the home (else: lowest latency). */
  setNetwork(cfg: { relays: readonly RelayConfig[]; homeRelay?: string | null; stunServers?: readonly string[] }): void {
    const before = JSON.stringify([this.relays.relays, this.configuredHome, this.stunServers]);
    this.relays.setRelays(cfg.relays);
    this.configuredHome = cfg.homeRelay ? normalizeRelayUrl(cfg.homeRelay) : null;
    this.stunServers = [...(cfg.stunServers ?? [])];
    const urls = this.relays.relays.map((r) => r.url);
    const current = this.relays.home;
    let home: string | null;
    if (this.configuredHome !== null) home = this.configuredHome;
    else if (current !== null && urls.includes(current)) home = current;
    else home = urls[0] ?? null;
    this.relays.setHome(home);
    const keep = new Set<string>();
    for (const ep of this.byKey.values()) if (ep.relayUrl !== null) keep.add(ep.relayUrl);
    this.relays.closeUnused(keep);
    if (JSON.stringify([this.relays.relays, this.configuredHome, this.stunServers]) !== before && this.handler !== null) {
      void this.discover('network-config');
    }
  }

  get homeRelay(): string | null {
    return this.relays.home;
  }

  onLocalEndpointsChanged(cb: (e: LocalEndpoints) => void): () => void {
    this.endpointListeners.add(cb);
    return () => this.endpointListeners.delete(cb);
  }

  localEndpointInfo(): LocalEndpoints {
    return {
      publicEndpoints: [...this.publicEndpoints],
      localEndpoints: [...this.localEndpoints],
      natType: this.natType,
      discoKey: b64(this.discoPublicKey),
      preferredRelay: this.relays.home,
    };
  }

  /** The last netcheck report of this socket (null before the first). */
  get netcheck(): NetcheckReport | null {
    return this.lastReport;
  }

  /**
   * Run endpoint discovery now (STUN through this socket, local addresses, NAT type, home relay).
   * Concurrent calls share the running round (and schedule one more).
   */
  discover(reason: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.discovering !== null) {
      this.discoverAgain = true;
      return this.discovering;
    }
    this.discovering = this.runDiscovery(reason).finally(() => {
      this.discovering = null;
      if (this.discoverAgain && !this.closed) {
        this.discoverAgain = false;
        void this.discover('again');
      }
    });
    return this.discovering;
  }

  private async runDiscovery(reason: string): Promise<void> {
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    this.discoveryTimer = null;
    this.lastDiscoveryStart = this.clock.now();
    let report: NetcheckReport | null = null;
    try {
      const { targets, errors } = await resolveStunTargets(this.relays.relays, this.stunServers);
      report = await runNetcheck({ stun: this.stun, targets, errors, relays: this.relays.relays, timeoutMs: this.stunTimeoutMs });
    } catch (e) {
      this.log('discovery-failed', { reason, error: (e as Error).message });
    }
    if (this.closed) return;
    this.refreshLocalEndpoints();
    if (report !== null) {
      this.lastReport = report;
      this.lastDiscoveryAt = new Date();
      this.udpWorks = report.udp;
      if (report.udp === true || report.udp === null) {
        this.publicEndpoints = report.publicEndpoints;
        this.natType = report.mapping;
      } else {
        this.publicEndpoints = [];
        this.natType = 'unknown';
      }
      for (const r of report.relays) this.relays.noteStunRtt(r.url, r.stunRttMs ?? null);
      if (this.configuredHome === null && report.preferredRelay !== null) this.relays.setHome(report.preferredRelay);
    }
    this.rebuildOurEndpoints();
    this.publishIfChanged(reason);
    const next = report?.udp === false ? RESTUN_NO_UDP_MS : RESTUN_MIN_MS + Math.random() * (RESTUN_MAX_MS - RESTUN_MIN_MS);
    this.discoveryTimer = setTimeout(() => void this.discover('periodic'), next);
    this.discoveryTimer.unref();
  }

  /** A direct path died: our mapping may have changed; re-STUN soon. */
  private requestRestun(): void {
    if (this.closed) return;
    const since = this.clock.now() - this.lastDiscoveryStart;
    if (since >= RESTUN_ON_PATH_LOSS_MIN_MS) {
      void this.discover('path-lost');
      return;
    }
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    this.discoveryTimer = setTimeout(() => void this.discover('path-lost'), RESTUN_ON_PATH_LOSS_MIN_MS - since);
    this.discoveryTimer.unref();
  }

  private refreshLocalEndpoints(): void {
    const port = this.socket.port;
    const out: string[] = [];
    const ifs = networkInterfaces();
    for (const [name, list] of Object.entries(ifs)) {
      if (this.excluded.has(name) || list === undefined) continue;
      for (const a of list) {
        if (a.internal || this.excludeIp(a.address)) continue;
        if (a.family === 'IPv6' && (this.socket.family === 4 || /^fe80:/i.test(a.address))) continue;
        const text = a.family === 'IPv6' ? `[${a.address}]:${port}` : `${a.address}:${port}`;
        if (!out.includes(text)) out.push(text);
      }
    }
    this.localEndpoints = out;
  }

  private rebuildOurEndpoints(): void {
    const list: IpPort[] = [];
    for (const s of [...this.publicEndpoints, ...this.localEndpoints]) {
      const a = parseAddr(s);
      if (a !== null && !list.some((x) => x.ip === a.ip && x.port === a.port)) list.push({ ip: a.ip, port: a.port });
    }
    this.ourEndpointList = list;
  }

  private publishIfChanged(reason: string): void {
    const info = this.localEndpointInfo();
    const text = JSON.stringify(info);
    if (text === this.lastPublished) return;
    const first = this.lastPublished === '';
    this.lastPublished = text;
    this.log('local-endpoints', { reason, ...info });
    if (!first) {
      const now = this.clock.now();
      for (const ep of this.active) ep.onLocalEndpointsChanged(now);
    }
    for (const cb of this.endpointListeners) {
      try {
        cb(info);
      } catch (e) {
        this.log('listener-failed', { error: (e as Error).message });
      }
    }
  }

  // ------------------------------------------------------------------------------------- receive

  private onUdpBatch(batch: PacketBatch): void {
    const n = batch.count;
    const buf = batch.buf;
    const offsets = batch.offsets;
    const lengths = batch.lengths;
    let other = 0;
    for (let i = 0; i < n; i++) if (!isWireGuardAt(buf, offsets[i]!, lengths[i]!)) other++;
    if (other > 0) {
      const addrs = batch.addrs;
      let out = 0;
      for (let i = 0; i < n; i++) {
        const off = offsets[i]!;
        const len = lengths[i]!;
        if (!isWireGuardAt(buf, off, len)) {
          this.handleOther(buf.subarray(off, off + len), addrs, i);
          continue;
        }
        if (out !== i) {
          offsets[out] = off;
          lengths[out] = len;
          addrs.copyWithin(out * ADDR_SIZE, i * ADDR_SIZE, (i + 1) * ADDR_SIZE);
        }
        out++;
      }
      batch.count = out;
    }
    this.counters.wgReceived += batch.count;
    if (batch.count > 0 && this.handler !== null) this.handler(batch);
  }

  private handleOther(pkt: Uint8Array, addrs: Uint8Array, i: number): void {
    if (isDiscoPacket(pkt)) {
      this.counters.discoReceived++;
      this.handleDisco(pkt, addrAt(addrs, i), null);
      return;
    }
    if (this.stun.handlePacket(pkt)) {
      this.counters.stunReceived++;
      return;
    }
    this.counters.unknownDatagrams++;
  }

  /** A disco packet from a direct source (from) or over the relay from relaySrc. */
  private handleDisco(pkt: Uint8Array, from: ParsedAddr | null, relaySrc: Uint8Array | null): void {
    const ep = this.byDisco.get(hexKey(discoSender(pkt)));
    if (ep === undefined || ep.sharedKey === null) {
      this.counters.discoUnknownSender++;
      return;
    }
    if (relaySrc !== null && !sameBytes(relaySrc, ep.publicKey)) {
      this.counters.discoBad++;
      return;
    }
    let msg: DiscoMessage;
    try {
      msg = openDiscoPacket(pkt, ep.sharedKey).message;
    } catch (e) {
      if (!(e instanceof DiscoError)) throw e;
      this.counters.discoBad++;
      return;
    }
    const now = this.clock.now();
    switch (msg.type) {
      case 'ping':
        if (msg.nodeKey !== undefined && !sameBytes(msg.nodeKey, ep.publicKey)) {
          this.counters.discoBad++;
          return;
        }
        ep.onPing(msg.txId, from, now);
        return;
      case 'pong':
        ep.onPong(msg.txId, from, msg.src, now);
        return;
      case 'call-me-maybe':
        if (from !== null) {
          // Only ever sent over the relay.
          this.counters.discoBad++;
          return;
        }
        ep.onCallMeMaybe(msg.endpoints, now);
        return;
    }
  }

  private onRelayPacket(src: Uint8Array, packet: Uint8Array): void {
    if (this.closed) return;
    if (isDiscoPacket(packet)) {
      this.counters.relayDiscoReceived++;
      this.handleDisco(packet, null, src);
      return;
    }
    if (!isWireGuardAt(packet, 0, packet.length)) {
      this.counters.unknownDatagrams++;
      return;
    }
    const ep = this.byKey.get(b64(src));
    const b = this.relayRx;
    if (ep === undefined || packet.length > b.slotSize) {
      this.counters.relayUnknownPeer++;
      return;
    }
    b.reset(0);
    b.push(packet, 0);
    writeRelaySource(b.addrs, 0, ep.id);
    this.counters.relayWgReceived++;
    this.handler?.(b);
  }

  // ------------------------------------------------------------------------------------- send helpers

  /** No trusted direct path: relay the packet (copying it) and look for a path. */
  private sendSlow(ep: PeerEndpoint, batch: PacketBatch, i: number, now: number): void {
    const off = batch.offsets[i]!;
    const pkt = batch.buf.subarray(off, off + batch.lengths[i]!);
    const url = this.relayUrlFor(ep);
    if (url !== null) {
      if (this.relays.send(url, ep.publicKey, pkt)) this.counters.relaySent++;
      else this.counters.relayDropped++;
    } else if (ep.bestAddr === null) {
      // No relay at all: spray the candidates until one answers a ping.
      let k = 0;
      for (const c of ep.candidates.values()) {
        if (k++ >= 4) break;
        this.sendRaw(pkt, c.addr);
      }
    }
    ep.onSlowPathSend(now);
  }

  private sendRaw(data: Uint8Array, addr: Uint8Array): void {
    const b = this.raw;
    if (data.length > b.slotSize) return;
    b.reset(0);
    b.push(data, 0);
    b.addrs.set(addr.subarray(0, ADDR_SIZE), 0);
    b.addrs[18] = 0;
    b.addrs[19] = 0;
    this.socket.sendBatch(b, 0, 1);
  }

  private sendStun(packet: Uint8Array, port: number, host: string): void {
    const a = parseAddr(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
    if (a === null) throw new MeshdError('E_ENGINE', `bad STUN server address ${host}:${port}`);
    this.sendRaw(packet, a.addr);
  }

  private sendDisco(ep: PeerEndpoint, to: Candidate | null, msg: DiscoMessage): boolean {
    if (this.closed || ep.sharedKey === null) return false;
    let sealed: Uint8Array;
    try {
      sealed = sealDiscoPacket(msg, this.discoPublicKey, ep.sharedKey, new Uint8Array(randomBytes(24)));
    } catch (e) {
      this.log('disco-seal-failed', { peer: ep.publicKeyBase64, error: (e as Error).message });
      return false;
    }
    if (to !== null) {
      this.sendRaw(sealed, to.addr);
      return true;
    }
    const url = this.relayUrlFor(ep);
    return url !== null && this.relays.send(url, ep.publicKey, sealed);
  }

  private relayUrlFor(ep: PeerEndpoint): string | null {
    return ep.relayUrl ?? this.relays.home;
  }

  // ------------------------------------------------------------------------------------- address map

  private ownerOf(addrs: Uint8Array, i: number): PeerEndpoint | undefined {
    const k = v4Key(addrs, i);
    if (k !== -1) return this.byV4.get(k);
    if (this.byOther.size === 0) return undefined;
    return this.byOther.get(addrAt(addrs, i).key);
  }

  private mapCandidate(ep: PeerEndpoint, c: Candidate): void {
    const k = v4Key(c.addr, 0);
    if (k !== -1) this.byV4.set(k, ep);
    else this.byOther.set(c.key, ep);
  }

  private unmapCandidate(ep: PeerEndpoint, c: Candidate): void {
    const k = v4Key(c.addr, 0);
    if (k !== -1) {
      if (this.byV4.get(k) === ep) this.byV4.delete(k);
    } else if (this.byOther.get(c.key) === ep) this.byOther.delete(c.key);
  }

  // ------------------------------------------------------------------------------------- timers, events, status

  private tick(): void {
    if (this.active.size === 0) return;
    const now = this.clock.now();
    for (const ep of this.active) if (!ep.tick(now)) this.active.delete(ep);
  }

  private onEndpointEvent(ep: PeerEndpoint, e: EndpointEvent): void {
    const peer = ep.publicKeyBase64;
    switch (e.type) {
      case 'path-changed':
        this.log('path-changed', { peer, from: e.from, to: e.to });
        return;
      case 'path-lost':
        this.log('path-lost', { peer, addr: e.addr });
        if (this.clock.now() - ep.lastSend <= SESSION_ACTIVE_TIMEOUT_MS) this.requestRestun();
        return;
      case 'disco-reset':
        this.log('peer-disco-reset', { peer });
        return;
      case 'call-me-maybe-received':
        this.log('call-me-maybe', { peer, endpoints: e.endpoints, added: e.added });
        return;
      default:
        return;
    }
  }

  status(): MagicSockStatus {
    const now = this.clock.now();
    return {
      listenPort: this.socket.port,
      udp: this.socket.kind,
      discoKey: b64(this.discoPublicKey),
      publicEndpoints: [...this.publicEndpoints],
      localEndpoints: [...this.localEndpoints],
      natType: this.natType,
      udpWorks: this.udpWorks,
      homeRelay: this.relays.home,
      relays: this.relays.status(),
      stun: this.lastReport?.stun ?? [],
      lastDiscovery: this.lastDiscoveryAt?.toISOString() ?? null,
      counters: { ...this.counters },
      socket: { ...this.socket.stats },
      peers: [...this.byKey.values()].map((ep) => ({ publicKey: ep.publicKeyBase64, ...ep.status(now) })),
    };
  }

  /** Path status of a magic peer (base64 key); null for plain WireGuard peers and unknown keys. */
  peerStatus(publicKeyBase64: string): EndpointStatus | null {
    return this.byKey.get(publicKeyBase64)?.status(this.clock.now()) ?? null;
  }
}

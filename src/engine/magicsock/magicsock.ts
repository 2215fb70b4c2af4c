/**
 * The magic socket: one UDP socket carrying WireGuard, disco and STUN, plus relay connections,
 * behind the WireGuard device's Bind interface.
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
 * `endpointFor` work for them. Who is who lives in peer-table.ts; endpoint discovery (STUN
 * through this socket, local addresses, NAT type, home relay) in discovery.ts.
 */
import { randomBytes } from 'node:crypto';
import { MeshdError } from '../../errors.js';
import { hexOf as hexKey, sameBytes } from '../../util/bytes.js';
import { boxPublicKey, generateBoxKeyPair } from '../crypto/nacl-box.js';
import { ADDR_SIZE, PacketBatch } from '../packet-batch.js';
import type { BatchUdpSocket, UdpImplementation } from '../udp/batch-udp-socket.js';
import { openSocket, type MagicSockOptions } from './magicsock-options.js';
import { AddrEndpoint } from '../wireguard/addr-endpoint.js';
import type { Bind, Endpoint, ReceiveHandler } from '../wireguard/bind.js';
import { systemClock, type Clock, type Ticker } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/log.js';
import { addrAt, isRelaySource, parseAddr, relaySourceId, writeRelaySource, type ParsedAddr } from './addr.js';
import { SESSION_ACTIVE_TIMEOUT_MS, STUN_TIMEOUT_MS, TICK_MS } from './constants.js';
import {
  DiscoError,
  MAX_DISCO_PACKET_LEN,
  MAX_RELAY_DISCO_PACKET_LEN,
  discoSender,
  openDiscoPacket,
  sealDiscoPacket,
  type DiscoMessage,
} from './disco.js';
import { EndpointDiscovery, type LocalEndpoints } from './discovery.js';
import { PeerEndpoint, type Candidate, type EndpointEvent, type EndpointIo, type EndpointStatus, type PingReply, type PingStart } from './endpoint.js';
import type { MagicSockCounters, MagicSockStatus } from './magicsock-status.js';
import type { NetcheckReport } from './netcheck.js';
import { b64, PeerTable, type MagicPeerConfig } from './peer-table.js';
import { RelaySet, normalizeRelayUrl, type RelayConfig } from './relay-set.js';
import { StunClient } from './stun.js';
import { classifyDatagram, isWireGuardAt, type DatagramKind } from './classify.js';

export type { RelayConfig } from './relay-set.js';
export type { LocalEndpoints } from './discovery.js';
export type { MagicPeerStatus, MagicSockCounters, MagicSockStatus } from './magicsock-status.js';
export type { MagicPeerConfig } from './peer-table.js';

export type { MagicSockOptions } from './magicsock-options.js';

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
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly rx = new PacketBatch(128);
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

  private readonly peers: PeerTable;
  /** Magic peers with path work to do (ticked until they say they are idle). */
  private readonly active = new Set<PeerEndpoint>();

  private readonly discovery: EndpointDiscovery;

  private constructor(
    private readonly socket: BatchUdpSocket,
    privateKey: Uint8Array,
    opts: MagicSockOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.publicKey = boxPublicKey(privateKey);
    if (opts.discoPrivateKey !== undefined) {
      if (opts.discoPrivateKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'disco private key must be 32 bytes');
      this.discoPrivateKey = new Uint8Array(opts.discoPrivateKey);
    } else {
      this.discoPrivateKey = generateBoxKeyPair().privateKey;
    }
    this.discoPublicKey = boxPublicKey(this.discoPrivateKey);
    this.stun = new StunClient({ send: (packet, port, host) => this.sendStun(packet, port, host), clock: this.clock });
    this.relays = new RelaySet({
      privateKey,
      publicKey: this.publicKey,
      onPacket: (src, packet) => this.onRelayPacket(src, packet),
      log: this.log.child('relays'),
    });
    this.io = {
      now: () => this.clock.now(),
      nodeKey: this.publicKey,
      sendDisco: (ep, to, msg) => this.sendDisco(ep, to, msg),
      ourEndpoints: () => this.discovery.ourEndpointList,
      relayUrlFor: (ep) => this.relayUrlFor(ep),
      ownerOf: (addrs, i) => this.peers.ownerOf(addrs, i),
      ...(opts.tunnelled ? { tunnelled: opts.tunnelled } : {}),
      candidateAdded: (ep, c) => this.peers.mapCandidate(ep, c),
      candidateRemoved: (ep, c) => this.peers.unmapCandidate(ep, c),
      activate: (ep) => this.activate(ep),
      event: (ep, e) => this.onEndpointEvent(ep, e),
    };
    this.peers = new PeerTable(this.io, this.discoPrivateKey);
    this.discovery = new EndpointDiscovery(
      {
        socket,
        relays: this.relays,
        stun: this.stun,
        discoKeyBase64: b64(this.discoPublicKey),
        clock: this.clock,
        log: this.log.child('discovery'),
        endpointsChanged: (now) => {
          for (const ep of this.active) ep.onLocalEndpointsChanged(now);
        },
      },
      { excludeInterfaces: opts.excludeInterfaces ?? [], excludeIp: opts.excludeIp ?? (() => false), stunTimeoutMs: opts.stunTimeoutMs ?? STUN_TIMEOUT_MS },
    );
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

  /** The SO_MARK the UDP socket carries (0: none). */
  get socketMark(): number {
    return this.socket.mark;
  }

  get kind(): UdpImplementation {
    return this.socket.kind;
  }

  start(handler: ReceiveHandler): void {
    this.handler = handler;
    this.socket.startReceiving(this.rx, (batch) => this.onUdpBatch(batch));
    if (this.active.size > 0) this.startTicking();
    void this.discover('start');
  }

  endpointFor(addrs: Uint8Array, i: number): Endpoint {
    if (isRelaySource(addrs, i)) {
      const ep = this.peers.byId.get(relaySourceId(addrs, i));
      if (ep !== undefined) return ep;
    }
    return this.peers.ownerOf(addrs, i) ?? AddrEndpoint.fromAddrs(addrs, i);
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
    this.discovery.close();
    this.stun.close();
    for (const ep of this.peers.byKey.values()) ep.close();
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
    const { endpoint, removed } = this.peers.upsert(cfg);
    if (removed !== null) this.active.delete(removed);
    return endpoint;
  }

  removePeer(publicKey: Uint8Array): void {
    const removed = this.peers.remove(b64(publicKey));
    if (removed !== null) this.active.delete(removed);
  }

  /**
   * Drop every peer's candidates that now enter our own tunnel (`tunnelled` says so since a
   * route into the TUN was added); returns how many.
   */
  dropTunnelledCandidates(): number {
    let n = 0;
    for (const ep of this.peers.byKey.values()) n += ep.dropTunnelled();
    if (n > 0) this.log.info('candidates-tunnelled', { dropped: n });
    return n;
  }

  /** The PeerEndpoint of a peer (base64 key), if it has one. */
  peerEndpoint(publicKeyBase64: string): PeerEndpoint | undefined {
    return this.peers.byKey.get(publicKeyBase64);
  }

  // ------------------------------------------------------------------------------------- relays / STUN config

  /** Set the relays and STUN servers; homeRelay fixes the home (else: lowest latency). */
  setNetwork(cfg: { relays: readonly RelayConfig[]; homeRelay?: string | null; stunServers?: readonly string[] }): void {
    const d = this.discovery;
    const before = JSON.stringify([this.relays.relays, d.configuredHome, d.stunServers]);
    this.relays.setRelays(cfg.relays);
    d.configuredHome = cfg.homeRelay ? normalizeRelayUrl(cfg.homeRelay) : null;
    d.stunServers = [...(cfg.stunServers ?? [])];
    const urls = this.relays.relays.map((r) => r.url);
    const current = this.relays.home;
    let home: string | null;
    if (d.configuredHome !== null) home = d.configuredHome;
    else if (current !== null && urls.includes(current)) home = current;
    else home = urls[0] ?? null;
    this.relays.setHome(home);
    const keep = new Set<string>();
    for (const ep of this.peers.byKey.values()) if (ep.relayUrl !== null) keep.add(ep.relayUrl);
    this.relays.closeUnused(keep);
    if (JSON.stringify([this.relays.relays, d.configuredHome, d.stunServers]) !== before && this.handler !== null) {
      void this.discover('network-config');
    }
  }

  get homeRelay(): string | null {
    return this.relays.home;
  }

  onLocalEndpointsChanged(cb: (e: LocalEndpoints) => void): () => void {
    return this.discovery.onChanged(cb);
  }

  localEndpointInfo(): LocalEndpoints {
    return this.discovery.info();
  }

  /** The last netcheck report of this socket (null before the first). */
  get netcheck(): NetcheckReport | null {
    return this.discovery.lastReport;
  }

  /**
   * Run endpoint discovery now (STUN through this socket, local addresses, NAT type, home relay).
   * Concurrent calls share the running round (and schedule one more).
   */
  discover(reason: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.discovery.discover(reason);
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
        const kind = classifyDatagram(buf, off, len);
        if (kind !== 'wireguard') {
          this.handleOther(kind, buf.subarray(off, off + len), addrs, i);
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

  private handleOther(kind: Exclude<DatagramKind, 'wireguard'>, pkt: Uint8Array, addrs: Uint8Array, i: number): void {
    if (kind === 'disco') {
      this.counters.discoReceived++;
      this.handleDisco(pkt, addrAt(addrs, i), null);
      return;
    }
    if (kind === 'stun' && this.stun.handlePacket(pkt)) {
      this.counters.stunReceived++;
      return;
    }
    this.counters.unknownDatagrams++;
  }

  /** A disco packet from a direct source (from) or over the relay from relaySrc. */
  private handleDisco(pkt: Uint8Array, from: ParsedAddr | null, relaySrc: Uint8Array | null): void {
    if (pkt.length > (relaySrc !== null ? MAX_RELAY_DISCO_PACKET_LEN : MAX_DISCO_PACKET_LEN)) {
      this.counters.discoBad++;
      return;
    }
    const ep = this.peers.byDisco.get(hexKey(discoSender(pkt)));
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
    const kind = classifyDatagram(packet);
    if (kind === 'disco') {
      this.counters.relayDiscoReceived++;
      this.handleDisco(packet, null, src);
      return;
    }
    if (kind !== 'wireguard') {
      this.counters.unknownDatagrams++;
      return;
    }
    const ep = this.peers.byKey.get(b64(src));
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
      this.log.warn('disco-seal-failed', { peer: ep.publicKeyBase64, error: (e as Error).message });
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

  // ------------------------------------------------------------------------------------- timers, events, status

  /**
   * A peer has path work to do (traffic started): tick it. The tick runs only while some peer is
   * active, so an idle socket wakes for nothing, however many peers it knows.
   */
  private activate(ep: PeerEndpoint): void {
    this.active.add(ep);
    if (this.handler !== null) this.startTicking();
  }

  private startTicking(): void {
    if (this.ticker !== null || this.closed) return;
    this.ticker = this.clock.every(TICK_MS, () => this.tick());
  }

  private tick(): void {
    const now = this.clock.now();
    for (const ep of this.active) if (!ep.tick(now)) this.active.delete(ep);
    if (this.active.size === 0) {
      this.ticker?.cancel();
      this.ticker = null;
    }
  }

  private onEndpointEvent(ep: PeerEndpoint, e: EndpointEvent): void {
    const peer = ep.publicKeyBase64;
    switch (e.type) {
      case 'path-changed':
        this.log.info('path-changed', { peer, from: e.from, to: e.to });
        return;
      case 'path-lost':
        this.log.info('path-lost', { peer, addr: e.addr });
        if (this.clock.now() - ep.lastSend <= SESSION_ACTIVE_TIMEOUT_MS) this.discovery.requestRestun();
        return;
      case 'disco-reset':
        this.log.info('peer-disco-reset', { peer });
        return;
      case 'call-me-maybe-received':
        this.log.debug('call-me-maybe', { peer, endpoints: e.endpoints, added: e.added });
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
      ...this.discovery.status(),
      homeRelay: this.relays.home,
      relays: this.relays.status(),
      counters: { ...this.counters },
      socket: { ...this.socket.stats },
      offload: { ...this.socket.offload },
      peers: [...this.peers.byKey.values()].map((ep) => ({ publicKey: ep.publicKeyBase64, ...ep.status(now) })),
    };
  }

  /**
   * A user's disco ping to a peer (base64 key) through the path its traffic takes now;
   * `reply` gets the first pong. 'no-disco': a plain WireGuard peer, or unknown.
   */
  pingPeer(publicKeyBase64: string, reply: (r: PingReply) => void): PingStart {
    const ep = this.peers.byKey.get(publicKeyBase64);
    if (ep === undefined || this.closed) return 'no-disco';
    const how = ep.userPing(this.clock.now(), reply);
    if (how !== 'no-disco' && how !== 'busy') this.activate(ep);
    return how;
  }

  /**
   * Ping every peer not heard from within `freshMs` (a liveness check); returns the keys
   * (base64) of those pinged. Their answers show in each peer's `heardAgoMs`.
   */
  probePeers(freshMs: number): string[] {
    const now = this.clock.now();
    const probed = [...this.peers.byKey.values()].filter((ep) => ep.probe(now, freshMs));
    for (const ep of probed) this.activate(ep); // the tick expires the pings
    return probed.map((ep) => ep.publicKeyBase64);
  }

  /** Path status of a magic peer (base64 key); null for plain WireGuard peers and unknown keys. */
  peerStatus(publicKeyBase64: string): EndpointStatus | null {
    return this.peers.byKey.get(publicKeyBase64)?.status(this.clock.now()) ?? null;
  }
}

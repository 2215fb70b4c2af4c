/**
 * The data plane of one node: a TUN device, the magic socket (direct UDP paths and relays) and
 * the WireGuard engine between them. The control plane hands it complete configurations
 * (`setConfig`: peers, relays, STUN servers) and it applies the difference without disturbing
 * peers that did not change; it reports per-peer paths (`status`) and tells the control plane
 * when this node's endpoints change (`onLocalEndpointsChanged`), which the agent publishes in
 * the endpoint record.
 *
 *   const dp = await DataPlane.start({ privateKey, tunName: 'meshd0', addresses: ['10.200.1.2/16'] });
 *   const r = await dp.setConfig({ peers: [...], relays: [{ url: 'http://relay:3340/derp' }] });
 *   r.failed;  // peers that could not be applied (the others were)
 *   dp.status();  await dp.stop();
 *
 * Packet filter: `filter` (a PacketFilter) becomes the engine's per-packet hooks (filterHooks);
 * `setFilter` swaps it while running. The data plane itself never looks at packets.
 */
import { MeshdError } from '../errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import { Engine, engineEventLevel, parseWgKey, type EngineEvent, type EngineStats, type PeerStats } from './engine.js';
import { DEFAULT_MTU } from './mtu.js';
import type { PacketFilter } from './filter/filter.js';
import { filterHooks } from './filter/hooks.js';
import { MagicSock, type LocalEndpoints, type MagicSockCounters, type RelayConfig } from './magicsock/magicsock.js';
import type { PingReply, PingStart } from './magicsock/endpoint.js';
import { PING_TIMEOUT_MS } from './magicsock/constants.js';
import type { RelayStatus } from './magicsock/relay-set.js';
import type { StunProbe } from './magicsock/netcheck.js';
import type { NatMapping } from './magicsock/stun.js';
import { TunDevice, type TunOffload, type TunStats } from './tun/tun-device.js';
import type { UdpImplementation, UdpOffload, UdpStats } from './udp/batch-udp-socket.js';
import { AddrEndpoint } from './wireguard/addr-endpoint.js';
import { parseIp } from '../util/ip.js';
import { containsAddress, containsPrefix, formatPrefix, makePrefix, parsePrefix, tryParsePrefix, type IpPrefix } from '../util/prefix.js';
import type { Endpoint } from './wireguard/bind.js';

export interface DataPlaneOptions {
  /** X25519 private key: 32 bytes or base64. */
  privateKey: Uint8Array | string;
  tunName: string;
  /** Our mesh addresses with prefix length, e.g. '10.200.1.2/16', 'fd0d:…/48'. */
  addresses: string[];
  /** TUN MTU (default DEFAULT_MTU, 1280: see mtu.ts). */
  mtu?: number | undefined;
  /** UDP port (0 or absent = ephemeral; falls back to ephemeral when taken). */
  listenPort?: number;
  /** Disco private key (32 bytes); generated per run when absent. */
  discoKey?: Uint8Array;
  /** Events at their level (route-failed, peer-failed at warn; path-lost, roaming at info). */
  log?: Logger;
  /** The packet filter for traffic to and from peers (none = accept everything). */
  filter?: PacketFilter;
  udpImplementation?: 'auto' | UdpImplementation;
  env?: NodeJS.ProcessEnv;
  /**
   * SO_MARK for the tunnel's UDP socket, so that policy routing (an exit node's routes) can leave
   * the tunnel's own datagrams alone. Best effort: `socketMark` says whether the socket has it.
   */
  socketMark?: number;
  /**
   * Local addresses never to announce as endpoints besides those of our own prefixes (e.g. the
   * addresses of other tunnels on the host); asked at every discovery.
   */
  excludeIp?: (ip: string) => boolean;
}

/**
 * One peer, as typed values: the control plane's text was parsed before it got here (the agent's
 * map-to-config), and the data plane parses none of it again.
 */
export interface DataPlanePeer {
  /** WireGuard public key, 32 bytes. */
  publicKey: Uint8Array;
  allowedIps: readonly IpPrefix[];
  /** Disco public key, 32 bytes (from the endpoint record); null = plain WireGuard peer. */
  discoKey: Uint8Array | null;
  /** Candidate endpoints from the peer's endpoint record (public, then local). */
  endpoints: readonly AddrEndpoint[];
  /** The peer's home relay URL, one of `relays`; null: reach it through ours. */
  homeRelay: string | null;
  persistentKeepalive?: number;
}

export interface DataPlaneConfig {
  peers: readonly DataPlanePeer[];
  /** The relays this node may connect to (http(s) URLs). */
  relays?: readonly RelayConfig[];
  /** This node's preferred relay; absent = the lowest-latency one. */
  homeRelay?: string | null;
  /** Extra STUN servers, 'ip:port'. */
  stunServers?: readonly string[];
}

/** A peer of a config that could not be applied; it is not in the data plane. */
export interface DataPlanePeerFailure {
  /** Base64 (or a description when the key itself is unusable). */
  publicKey: string;
  error: string;
}

/** What `setConfig` did. Peers that failed are left out; everything else was applied. */
export interface DataPlaneApplyResult {
  /** Peers in the data plane after this config. */
  applied: number;
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  failed: DataPlanePeerFailure[];
  /** Set when the relay / STUN configuration could not be applied (the peers still were). */
  relayError: string | null;
}

export interface DataPlanePeerStatus {
  publicKey: string;
  allowedIps: string[];
  path: 'direct' | 'relay' | 'none';
  /** 'ip:port' of the direct path in use. */
  endpoint?: string;
  /** Relay URL when path is relay. */
  relay?: string;
  latencyMs?: number;
  /** Wall-clock ms of the last handshake (0 = never). */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Handshakes completed with the peer since it was added. */
  handshakes: number;
  hasSession: boolean;
  /** Traffic sent in the last 45 s. */
  active: boolean;
  candidates: string[];
  /** Milliseconds since the peer last answered a disco ping or pinged us; absent: never. */
  heardAgoMs?: number;
}

export interface DataPlaneStatus {
  publicKey: string;
  discoKey: string;
  tunName: string;
  addresses: string[];
  mtu: number;
  listenPort: number;
  publicEndpoints: string[];
  localEndpoints: string[];
  natType: NatMapping;
  /** Did a STUN server answer over UDP in the last discovery (null: none asked yet). */
  udp: boolean | null;
  homeRelay: string | null;
  relays: RelayStatus[];
  stun: StunProbe[];
  lastDiscovery: string | null;
  counters: {
    engine: EngineStats;
    magicsock: MagicSockCounters;
    socket: UdpStats;
    udpImplementation: UdpImplementation;
    tun: TunStats;
    /** Segmentation offloads in use (all off under MESHD_NO_OFFLOAD=1). */
    offload: { tun: TunOffload; udp: UdpOffload };
    /** Configurations applied, and peers left out of them because applying them failed. */
    config: { applies: number; peerFailures: number };
  };
  peers: DataPlanePeerStatus[];
}

function configError(msg: string): MeshdError {
  return new MeshdError('E_CONFIG_INVALID', msg);
}

/** This node's own addresses ("10.200.3.7/16") as the prefixes they sit in. */
function ownPrefixesOf(addresses: readonly string[]): IpPrefix[] {
  return addresses.map((a) => parsePrefix(a, { hostBits: 'mask', bare: 'reject' }));
}

interface AppliedPeer {
  config: DataPlanePeer;
  endpoint: Endpoint | null;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameList<T>(a: readonly T[], b: readonly T[], eq: (x: T, y: T) => boolean): boolean {
  return a.length === b.length && a.every((x, i) => eq(x, b[i]!));
}

const samePrefix = (a: IpPrefix, b: IpPrefix): boolean => a.bits === b.bits && sameBytes(a.addr, b.addr);
const sameAddr = (a: AddrEndpoint, b: AddrEndpoint): boolean => sameBytes(a.addr, b.addr);

/** Same configuration, compared by value. */
function samePeer(a: DataPlanePeer, b: DataPlanePeer): boolean {
  return (
    sameList(a.allowedIps, b.allowedIps, samePrefix) &&
    sameBytes(a.discoKey, b.discoKey) &&
    sameList(a.endpoints, b.endpoints, sameAddr) &&
    a.homeRelay === b.homeRelay &&
    (a.persistentKeepalive ?? 0) === (b.persistentKeepalive ?? 0)
  );
}

/** Same endpoint, by the endpoint contract (never by their text). */
function sameEndpoint(a: Endpoint | null, b: Endpoint | null): boolean {
  if (a === null || b === null) return a === b;
  return a.equals(b);
}

function copyPeer(p: DataPlanePeer): DataPlanePeer {
  return {
    publicKey: new Uint8Array(p.publicKey),
    allowedIps: p.allowedIps.map((x) => makePrefix(x.addr, x.bits)),
    discoKey: p.discoKey === null ? null : new Uint8Array(p.discoKey),
    endpoints: [...p.endpoints],
    homeRelay: p.homeRelay,
    ...(p.persistentKeepalive !== undefined ? { persistentKeepalive: p.persistentKeepalive } : {}),
  };
}

export class DataPlane {
  readonly publicKey: string;
  /** The filter given at start (null: none). */
  readonly filter: PacketFilter | null;
  private readonly applied = new Map<string, AppliedPeer>();
  private routes = new Set<string>();
  private routePrefixes: IpPrefix[] = [];
  private readonly ownPrefixes: IpPrefix[];
  private stopped = false;
  private configQueue: Promise<unknown> = Promise.resolve();
  private readonly configCounters = { applies: 0, peerFailures: 0 };

  private constructor(
    private readonly tun: TunDevice,
    private readonly magic: MagicSock,
    private readonly engine: Engine,
    private readonly opts: DataPlaneOptions,
    readonly mtu: number,
    private readonly log: Logger,
  ) {
    this.publicKey = engine.publicKey!;
    this.filter = opts.filter ?? null;
    this.ownPrefixes = ownPrefixesOf(opts.addresses);
  }

  /** Open the TUN (addresses, MTU, link up), the magic socket and the engine. */
  static async start(opts: DataPlaneOptions): Promise<DataPlane> {
    const privateKey = parseWgKey(opts.privateKey, 'private key');
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535) throw configError(`bad MTU ${mtu} (1280 or more)`);
    for (const a of opts.addresses) {
      if (tryParsePrefix(a, { hostBits: 'mask', bare: 'reject' }) === null) throw configError(`address "${a}" is not IP/prefix-length`);
    }
    const log = opts.log ?? silentLogger;
    const meshPrefixes = ownPrefixesOf(opts.addresses);
    const tun = TunDevice.open({ name: opts.tunName, ...(opts.env !== undefined ? { env: opts.env } : {}) });
    const box: { dp: DataPlane | null } = { dp: null };
    let magic: MagicSock | null = null;
    try {
      await tun.configure({ mtu, addresses: opts.addresses });
      magic = await MagicSock.open({
        privateKey,
        ...(opts.discoKey !== undefined ? { discoPrivateKey: opts.discoKey } : {}),
        port: opts.listenPort ?? 0,
        excludeInterfaces: [opts.tunName],
        excludeIp: (ip) => {
          const host = parseIp(ip);
          return (host !== null && meshPrefixes.some((p) => containsAddress(p, host))) || (opts.excludeIp?.(ip) ?? false);
        },
        // a peer address inside the mesh or a route into the TUN would carry the tunnel in itself
        tunnelled: (ip) => {
          const host = parseIp(ip);
          return host !== null && (meshPrefixes.some((p) => containsAddress(p, host)) || (box.dp?.routedIntoTun(host) ?? false));
        },
        log: log.child('magicsock'),
        ...(opts.socketMark ? { socketMark: opts.socketMark } : {}),
        ...(opts.udpImplementation !== undefined ? { implementation: opts.udpImplementation } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      });
    } catch (e) {
      await magic?.close();
      await tun.close();
      throw e;
    }
    let engine: Engine;
    try {
      engine = new Engine({
        tun,
        bind: magic,
        mtu,
        privateKey,
        hooks: opts.filter ? filterHooks(opts.filter) : null,
        onEvent: (e) => box.dp?.onEngineEvent(e),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      });
    } catch (e) {
      await magic.close();
      await tun.close();
      throw e;
    }
    const dp = new DataPlane(tun, magic, engine, opts, mtu, log);
    box.dp = dp;
    engine.start();
    log.info('dataplane-up', {
      tun: opts.tunName,
      addresses: opts.addresses,
      port: magic.localPort,
      udp: magic.kind,
      publicKey: dp.publicKey,
      discoKey: Buffer.from(magic.discoPublicKey).toString('base64'),
    });
    return dp;
  }

  get listenPort(): number {
    return this.magic.localPort;
  }

  /** The SO_MARK the tunnel's UDP socket carries (0: none: no addon support, or no permission). */
  get socketMark(): number {
    return this.magic.socketMark;
  }

  get discoPublicKey(): string {
    return Buffer.from(this.magic.discoPublicKey).toString('base64');
  }

  /**
   * Apply a complete configuration: peers removed, relays and STUN servers set, peers added and
   * changed (unchanged peers are not touched), routes for allowed IPs outside our own prefixes.
   * Each peer is applied on its own: one that fails is left out (and reported in `failed`)
   * while the rest apply; peers missing from `cfg` are always removed. Calls are applied in
   * order. Rejects only when the data plane is stopped.
   */
  setConfig(cfg: DataPlaneConfig): Promise<DataPlaneApplyResult> {
    const run = this.configQueue.then(() => this.apply(cfg));
    this.configQueue = run.catch(() => undefined);
    return run;
  }

  private async apply(cfg: DataPlaneConfig): Promise<DataPlaneApplyResult> {
    if (this.stopped) throw new MeshdError('E_ENGINE', 'data plane is stopped');
    this.configCounters.applies++;
    const result: DataPlaneApplyResult = { applied: 0, added: 0, updated: 0, removed: 0, unchanged: 0, failed: [], relayError: null };
    const fail = (publicKey: string, error: unknown): void => {
      const message = error instanceof Error ? error.message : String(error);
      result.failed.push({ publicKey, error: message });
      this.configCounters.peerFailures++;
      this.log.warn('peer-failed', { peer: publicKey, error: message });
    };

    // Which peers are wanted; a peer that cannot be one is failed here, alone.
    const wanted = new Map<string, DataPlanePeer>();
    for (const p of cfg.peers) {
      if (!(p.publicKey instanceof Uint8Array) || p.publicKey.length !== 32) {
        fail(String(p.publicKey).slice(0, 60), configError('peer public key must be 32 bytes'));
        continue;
      }
      const k64 = Buffer.from(p.publicKey).toString('base64');
      if (wanted.has(k64)) fail(k64, configError(`peer ${k64} listed twice; the first is used`));
      else if (k64 === this.publicKey) fail(k64, configError('a peer has our own public key'));
      else wanted.set(k64, p);
    }

    // Removals first, whatever else happens.
    for (const k64 of [...this.applied.keys()]) {
      if (wanted.has(k64)) continue;
      this.dropPeer(k64);
      result.removed++;
      this.log.debug('peer-removed', { peer: k64 });
    }

    try {
      this.magic.setNetwork({
        relays: cfg.relays ?? [],
        ...(cfg.homeRelay !== undefined ? { homeRelay: cfg.homeRelay } : {}),
        stunServers: cfg.stunServers ?? [],
      });
    } catch (e) {
      result.relayError = (e as Error).message;
      this.log.warn('relays-failed', { error: result.relayError });
    }

    for (const [k64, p] of wanted) {
      const prev = this.applied.get(k64);
      if (prev !== undefined && samePeer(prev.config, p)) {
        result.unchanged++;
        continue;
      }
      try {
        this.applyPeer(k64, p, prev);
      } catch (e) {
        // Whatever part of it was set up goes: a peer is either fully configured or absent.
        this.dropPeer(k64);
        fail(k64, e);
        continue;
      }
      if (prev === undefined) result.added++;
      else result.updated++;
      this.log.debug(prev === undefined ? 'peer-added' : 'peer-updated', { peer: k64, magic: p.discoKey !== null });
    }
    result.applied = this.applied.size;
    await this.syncRoutes([...this.applied.values()].flatMap((a) => a.config.allowedIps));
    return result;
  }

  private applyPeer(k64: string, p: DataPlanePeer, prev: AppliedPeer | undefined): void {
    const endpoint = this.magic.upsertPeer({
      publicKey: p.publicKey,
      discoKey: p.discoKey,
      // The magic socket's own canonical text of the already-parsed endpoints.
      endpoints: p.endpoints.map((e) => e.toString()),
      homeRelay: p.homeRelay,
    });
    // A plain peer's endpoint is set only when its configured one changed (roaming is kept); a
    // magic peer's PeerEndpoint object stays the same while it stays a magic peer.
    const endpointChanged = prev === undefined || !sameEndpoint(prev.endpoint, endpoint);
    const engineCfg = {
      publicKey: p.publicKey,
      // The engine's own canonical text of the already-parsed prefixes.
      allowedIps: p.allowedIps.map(formatPrefix),
      persistentKeepalive: p.persistentKeepalive ?? 0,
      ...(endpointChanged ? { endpoint } : {}),
    };
    if (prev === undefined) this.engine.addPeer(engineCfg);
    else this.engine.updatePeer(engineCfg);
    this.applied.set(k64, { config: copyPeer(p), endpoint: endpointChanged ? endpoint : prev.endpoint });
  }

  /** Take a peer out of the engine and the magic socket (whatever of it is there). */
  private dropPeer(k64: string): void {
    const key = Buffer.from(k64, 'base64');
    this.applied.delete(k64);
    try {
      this.engine.removePeer(key);
    } finally {
      this.magic.removePeer(key);
    }
  }

  /** Whether `host` falls in a route this data plane put into the TUN (not the default route). */
  routedIntoTun(host: Uint8Array): boolean {
    return this.routePrefixes.some((p) => containsAddress(p, host));
  }

  private async syncRoutes(prefixes: IpPrefix[]): Promise<void> {
    const next = new Set<string>();
    for (const p of prefixes) {
      if (p.bits === 0) continue; // default routes are the agent's decision, not ours
      if (this.ownPrefixes.some((o) => containsPrefix(o, p))) continue;
      next.add(formatPrefix(p));
    }
    for (const r of next) {
      if (this.routes.has(r)) continue;
      try {
        await this.tun.addRoute(r);
      } catch (e) {
        this.log.warn('route-failed', { route: r, error: (e as Error).message });
        continue;
      }
    }
    for (const r of this.routes) if (!next.has(r)) await this.tun.removeRoute(r).catch(() => undefined);
    const added = [...next].some((r) => !this.routes.has(r));
    this.routes = next;
    this.routePrefixes = [...next].map((r) => parsePrefix(r, { hostBits: 'reject' }));
    // a peer address the new routes cover is reached through the tunnel now: no longer a path
    if (added) this.magic.dropTunnelledCandidates();
  }

  /**
   * Engine events, logged at their level. Roaming needs nothing from us: a magic peer's
   * endpoint takes the new source itself (Endpoint.roamed), a plain peer's moves to it.
   */
  private onEngineEvent(e: EngineEvent): void {
    const { type, ...rest } = e;
    this.log.log(engineEventLevel(e), type, rest);
  }

  /** Install (or remove, with null) the packet filter while running. */
  setFilter(filter: PacketFilter | null): void {
    this.engine.setHooks(filter === null ? null : filterHooks(filter));
  }

  /** Called with this node's endpoints whenever they change (and not otherwise). */
  onLocalEndpointsChanged(cb: (e: LocalEndpoints) => void): () => void {
    return this.magic.onLocalEndpointsChanged(cb);
  }

  /** This node's endpoints as last discovered. */
  localEndpoints(): LocalEndpoints {
    return this.magic.localEndpointInfo();
  }

  status(): DataPlaneStatus {
    const m = this.magic.status();
    const stats = new Map<string, PeerStats>(this.engine.peerStats().map((s) => [s.publicKey, s]));
    const peers: DataPlanePeerStatus[] = [];
    for (const [k64] of this.applied) {
      const s = stats.get(k64);
      const path = this.magic.peerStatus(k64);
      const base = {
        publicKey: k64,
        allowedIps: s?.allowedIps ?? [],
        lastHandshake: s?.lastHandshake ?? 0,
        rxBytes: s?.rxBytes ?? 0,
        txBytes: s?.txBytes ?? 0,
        handshakes: s?.handshakes ?? 0,
        hasSession: s?.hasSession ?? false,
      };
      if (path !== null) {
        peers.push({
          ...base,
          path: path.path,
          ...(path.endpoint !== undefined ? { endpoint: path.endpoint } : {}),
          ...(path.relay !== undefined ? { relay: path.relay } : {}),
          ...(path.latencyMs !== undefined ? { latencyMs: path.latencyMs } : {}),
          active: path.active,
          candidates: path.candidates,
          ...(path.heardAgoMs !== undefined ? { heardAgoMs: path.heardAgoMs } : {}),
        });
      } else {
        const ep = s?.endpoint ?? null;
        peers.push({ ...base, path: ep === null ? 'none' : 'direct', ...(ep !== null ? { endpoint: ep } : {}), active: false, candidates: ep === null ? [] : [ep] });
      }
    }
    return {
      publicKey: this.publicKey,
      discoKey: m.discoKey,
      tunName: this.opts.tunName,
      addresses: [...this.opts.addresses],
      mtu: this.mtu,
      listenPort: m.listenPort,
      publicEndpoints: m.publicEndpoints,
      localEndpoints: m.localEndpoints,
      natType: m.natType,
      udp: m.udpWorks,
      homeRelay: m.homeRelay,
      relays: m.relays,
      stun: m.stun,
      lastDiscovery: m.lastDiscovery,
      counters: {
        engine: this.engine.stats(),
        magicsock: m.counters,
        socket: m.socket,
        udpImplementation: m.udp,
        tun: { ...this.tun.stats },
        offload: { tun: { ...this.tun.offload }, udp: m.offload },
        config: { ...this.configCounters },
      },
      peers,
    };
  }

  /**
   * One disco ping to a peer (base64 WireGuard key) through the path its traffic takes now
   * (`meshd ping`). Resolves with the pong (path and round trip), or `reply: null` when none
   * came within `timeoutMs` (at most PING_TIMEOUT_MS, after which a ping is forgotten); `sent`
   * says how it went out ('no-disco': a plain WireGuard peer, 'no-path': nowhere to send it).
   */
  ping(publicKeyBase64: string, timeoutMs = PING_TIMEOUT_MS): Promise<{ sent: PingStart; reply: PingReply | null }> {
    if (this.stopped || !this.applied.has(publicKeyBase64)) return Promise.resolve({ sent: 'no-disco', reply: null });
    return new Promise((resolve) => {
      const wait: { timer?: NodeJS.Timeout } = {};
      const sent = this.magic.pingPeer(publicKeyBase64, (reply) => {
        clearTimeout(wait.timer);
        resolve({ sent, reply });
      });
      if (sent === 'no-disco' || sent === 'no-path' || sent === 'busy') return resolve({ sent, reply: null });
      wait.timer = setTimeout(() => resolve({ sent, reply: null }), Math.min(Math.max(1, timeoutMs), PING_TIMEOUT_MS));
    });
  }

  /** Ping every peer not heard from within `freshMs` (liveness); returns the keys pinged. */
  probePeers(freshMs: number): string[] {
    return this.magic.probePeers(freshMs);
  }

  /** Run endpoint discovery now (STUN, local addresses, NAT type); resolves when done. */
  rediscover(): Promise<void> {
    return this.magic.discover('requested');
  }

  /** Stop everything and remove the TUN (with its routes). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // the engine first (no more packets into the two), then what this object opened
    await this.engine.stop();
    await Promise.allSettled([this.magic.close(), this.tun.close()]);
    this.log.info('dataplane-down', { tun: this.opts.tunName });
  }
}

/**
 * The data plane of one node: a TUN device, the magic socket (direct UDP paths and relays) and
 * the WireGuard engine between them. The control plane hands it complete configurations
 * (`setConfig`: peers, relays, STUN servers) and it applies the difference without disturbing
 * peers that did not change; it reports per-peer paths (`status`) and tells the control plane
 * when this node's endpoints change (`onLocalEndpointsChanged`), which the agent publishes in
 * the endpoint record.
 *
 *   const dp = await DataPlane.start({ privateKey, tunName: 'meshd0', addresses: ['10.200.1.2/16'] });
 *   await dp.setConfig({ peers: [...], relays: [{ url: 'http://relay:3340/derp' }] });
 *   dp.status();  await dp.stop();
 *
 * Packet filter: `filter` (a PacketFilter) becomes the engine's per-packet hooks (filterHooks);
 * `setFilter` swaps it while running. The data plane itself never looks at packets.
 */
import { MeshdError } from '../errors.js';
import { Engine, parseWgKey, type EngineEvent, type EngineStats, type PeerStats } from './engine.js';
import type { PacketFilter } from './filter/filter.js';
import { filterHooks } from './filter/hooks.js';
import { MagicSock, type LocalEndpoints, type MagicSockCounters, type RelayConfig } from './magicsock/magicsock.js';
import type { RelayStatus } from './magicsock/relay-set.js';
import type { StunProbe } from './magicsock/netcheck.js';
import type { NatMapping } from './magicsock/stun.js';
import { TunDevice } from './tun/tun-device.js';
import type { UdpImplementation, UdpStats } from './udp/batch-udp-socket.js';
import { AddrEndpoint } from './wireguard/addr-endpoint.js';
import { formatPrefix, maskBytes, parsePrefix, type IpPrefix } from './wireguard/ip-prefix.js';
import type { Endpoint } from './wireguard/bind.js';

export type DataPlaneLog = (event: string, fields: Record<string, unknown>) => void;

export interface DataPlaneOptions {
  /** X25519 private key: 32 bytes or base64. */
  privateKey: Uint8Array | string;
  tunName: string;
  /** Our mesh addresses with prefix length, e.g. '10.200.1.2/16', 'fd0d:…/48'. */
  addresses: string[];
  /** TUN MTU (default 1280). */
  mtu?: number;
  /** UDP port (0 or absent = ephemeral; falls back to ephemeral when taken). */
  listenPort?: number;
  /** Disco private key (32 bytes); generated per run when absent. */
  discoKey?: Uint8Array;
  log?: DataPlaneLog;
  /** The packet filter for traffic to and from peers (none = accept everything). */
  filter?: PacketFilter;
  udpImplementation?: 'auto' | UdpImplementation;
  env?: NodeJS.ProcessEnv;
}

export interface DataPlanePeer {
  /** WireGuard public key, base64. */
  publicKey: string;
  allowedIps: string[];
  /** Disco public key, base64 (from the endpoint record); absent/null = plain WireGuard peer. */
  discoKey?: string | null;
  /** 'ip:port' candidates from the peer's endpoint record (public + local). */
  endpoints?: string[];
  /** The peer's home relay URL. */
  homeRelay?: string | null;
  persistentKeepalive?: number;
}

export interface DataPlaneConfig {
  peers: DataPlanePeer[];
  relays?: RelayConfig[];
  /** This node's preferred relay; absent = the lowest-latency one. */
  homeRelay?: string | null;
  /** Extra STUN servers, 'ip:port'. */
  stunServers?: string[];
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
  hasSession: boolean;
  /** Traffic sent in the last 45 s. */
  active: boolean;
  candidates: string[];
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
  counters: { engine: EngineStats; magicsock: MagicSockCounters; socket: UdpStats; udpImplementation: UdpImplementation };
  peers: DataPlanePeerStatus[];
}

function configError(msg: string): MeshdError {
  return new MeshdError('E_CONFIG_INVALID', msg);
}

function parseKey32(s: string, what: string): Uint8Array {
  return parseWgKey(s, what);
}

function covers(outer: IpPrefix, inner: IpPrefix): boolean {
  if (outer.addr.length !== inner.addr.length || outer.bits > inner.bits) return false;
  const m = maskBytes(inner.addr, outer.bits);
  for (let i = 0; i < m.length; i++) if (m[i] !== outer.addr[i]) return false;
  return true;
}

interface AppliedPeer {
  text: string;
  endpoint: Endpoint | null;
}

export class DataPlane {
  readonly publicKey: string;
  /** The filter given at start (null: none). */
  readonly filter: PacketFilter | null;
  private readonly applied = new Map<string, AppliedPeer>();
  private routes = new Set<string>();
  private readonly ownPrefixes: IpPrefix[];
  private stopped = false;
  private configQueue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly tun: TunDevice,
    private readonly magic: MagicSock,
    private readonly engine: Engine,
    private readonly opts: DataPlaneOptions,
    readonly mtu: number,
    private readonly log: DataPlaneLog,
  ) {
    this.publicKey = engine.publicKey!;
    this.filter = opts.filter ?? null;
    this.ownPrefixes = opts.addresses.map((a) => parsePrefix(a)!);
  }

  /** Open the TUN (addresses, MTU, link up), the magic socket and the engine. */
  static async start(opts: DataPlaneOptions): Promise<DataPlane> {
    const privateKey = parseWgKey(opts.privateKey, 'private key');
    const mtu = opts.mtu ?? 1280;
    if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535) throw configError(`bad MTU ${mtu} (1280 or more)`);
    for (const a of opts.addresses) {
      if (!a.includes('/') || parsePrefix(a) === null) throw configError(`address "${a}" is not IP/prefix-length`);
    }
    const log: DataPlaneLog = opts.log ?? (() => undefined);
    const meshPrefixes = opts.addresses.map((a) => parsePrefix(a)!);
    const tun = TunDevice.open({ name: opts.tunName });
    let magic: MagicSock | null = null;
    try {
      await tun.configure({ mtu, addresses: opts.addresses });
      magic = await MagicSock.open({
        privateKey,
        ...(opts.discoKey !== undefined ? { discoPrivateKey: opts.discoKey } : {}),
        port: opts.listenPort ?? 0,
        excludeInterfaces: [opts.tunName],
        excludeIp: (ip) => {
          const host = parsePrefix(ip);
          return host !== null && meshPrefixes.some((p) => covers(p, host));
        },
        log,
        ...(opts.udpImplementation !== undefined ? { implementation: opts.udpImplementation } : {}),
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      });
    } catch (e) {
      await magic?.close();
      await tun.close();
      throw e;
    }
    const box: { dp: DataPlane | null } = { dp: null };
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
    log('dataplane-up', {
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

  get discoPublicKey(): string {
    return Buffer.from(this.magic.discoPublicKey).toString('base64');
  }

  /** The magic socket (tests, diagnostics). */
  get magicSock(): MagicSock {
    return this.magic;
  }

  /**
   * Apply a complete configuration: peers added, changed and removed (unchanged peers are not
   * touched), relays and STUN servers set, routes for allowed IPs outside our own prefixes.
   * Calls are applied in order.
   */
  setConfig(cfg: DataPlaneConfig): Promise<void> {
    const run = this.configQueue.then(() => this.apply(cfg));
    this.configQueue = run.catch(() => undefined);
    return run;
  }

  private async apply(cfg: DataPlaneConfig): Promise<void> {
    if (this.stopped) throw new MeshdError('E_ENGINE', 'data plane is stopped');
    // Validate everything before changing anything.
    const wanted = new Map<string, { peer: DataPlanePeer; key: Uint8Array; disco: Uint8Array | null; prefixes: IpPrefix[] }>();
    for (const p of cfg.peers) {
      const key = parseKey32(p.publicKey, 'peer public key');
      const k64 = Buffer.from(key).toString('base64');
      if (wanted.has(k64)) throw configError(`peer ${k64} listed twice`);
      if (k64 === this.publicKey) throw configError('a peer has our own public key');
      const disco = p.discoKey === undefined || p.discoKey === null || p.discoKey === '' ? null : parseKey32(p.discoKey, `peer ${k64} disco key`);
      const prefixes = p.allowedIps.map((a) => {
        const x = parsePrefix(a.trim());
        if (x === null) throw configError(`peer ${k64}: "${a}" is not an IP prefix`);
        return x;
      });
      for (const e of p.endpoints ?? []) {
        try {
          AddrEndpoint.parse(e);
        } catch {
          throw configError(`peer ${k64}: endpoint "${e}" is not ip:port`);
        }
      }
      if (p.homeRelay) {
        try {
          new URL(p.homeRelay);
        } catch {
          throw configError(`peer ${k64}: bad home relay URL "${p.homeRelay}"`);
        }
      }
      wanted.set(k64, { peer: p, key, disco, prefixes });
    }
    for (const r of cfg.relays ?? []) {
      try {
        new URL(r.url);
      } catch {
        throw configError(`bad relay URL "${r.url}"`);
      }
    }

    this.magic.setNetwork({
      relays: cfg.relays ?? [],
      ...(cfg.homeRelay !== undefined ? { homeRelay: cfg.homeRelay } : {}),
      stunServers: cfg.stunServers ?? [],
    });

    for (const k64 of [...this.applied.keys()]) {
      if (wanted.has(k64)) continue;
      this.engine.removePeer(k64);
      this.magic.removePeer(Buffer.from(k64, 'base64'));
      this.applied.delete(k64);
      this.log('peer-removed', { peer: k64 });
    }
    for (const [k64, w] of wanted) {
      const p = w.peer;
      const text = JSON.stringify([p.allowedIps, p.discoKey ?? null, p.endpoints ?? [], p.homeRelay ?? null, p.persistentKeepalive ?? 0]);
      const prev = this.applied.get(k64);
      if (prev !== undefined && prev.text === text) continue;
      const endpoint = this.magic.upsertPeer({
        publicKey: w.key,
        discoKey: w.disco,
        endpoints: p.endpoints ?? [],
        homeRelay: p.homeRelay ?? null,
      });
      const engineCfg = {
        publicKey: k64,
        allowedIps: w.prefixes.map(formatPrefix),
        persistentKeepalive: p.persistentKeepalive ?? 0,
        // A plain peer's endpoint changes only when its configured one did (roaming is kept).
        ...(prev === undefined || prev.endpoint !== endpoint || endpoint instanceof AddrEndpoint ? { endpoint } : {}),
      };
      if (prev === undefined) this.engine.addPeer(engineCfg);
      else this.engine.updatePeer(engineCfg);
      this.applied.set(k64, { text, endpoint });
      this.log(prev === undefined ? 'peer-added' : 'peer-updated', { peer: k64, magic: w.disco !== null });
    }
    await this.syncRoutes([...wanted.values()].flatMap((w) => w.prefixes));
  }

  private async syncRoutes(prefixes: IpPrefix[]): Promise<void> {
    const next = new Set<string>();
    for (const p of prefixes) {
      if (p.bits === 0) continue; // default routes are the agent's decision, not ours
      if (this.ownPrefixes.some((o) => covers(o, p))) continue;
      next.add(formatPrefix(p));
    }
    for (const r of next) {
      if (this.routes.has(r)) continue;
      try {
        await this.tun.addRoute(r);
      } catch (e) {
        this.log('route-failed', { route: r, error: (e as Error).message });
        continue;
      }
    }
    for (const r of this.routes) if (!next.has(r)) await this.tun.removeRoute(r).catch(() => undefined);
    this.routes = next;
  }

  private onEngineEvent(e: EngineEvent): void {
    if (e.type === 'endpoint-changed') {
      // A magic peer's packet came from an address nobody claimed: learn it, keep the peer's
      // PeerEndpoint (path choice stays with the magic socket).
      const peer = this.engine.device.getPeer(Buffer.from(e.peer, 'base64'));
      const got = peer?.endpoint ?? null;
      if (got !== null) {
        const ep = this.magic.adoptRoamed(e.peer, got);
        if (ep !== null) {
          this.engine.updatePeer({ publicKey: e.peer, endpoint: ep });
          this.log('peer-roamed', { peer: e.peer, from: e.endpoint });
          return;
        }
      }
    }
    const { type, ...rest } = e;
    this.log(type, rest);
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
      counters: { engine: this.engine.stats(), magicsock: m.counters, socket: m.socket, udpImplementation: m.udp },
      peers,
    };
  }

  /** Run endpoint discovery now (STUN, local addresses, NAT type); resolves when done. */
  rediscover(): Promise<void> {
    return this.magic.discover('requested');
  }

  /** Stop everything and remove the TUN (with its routes). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.engine.stop();
    this.log('dataplane-down', { tun: this.opts.tunName });
  }
}

/**
 * The agent: the control loop that joins the control plane to the data plane. It opens the
 * profile's network, starts the data plane (TUN + magic socket + WireGuard) from the first
 * network map (the cached one when the DWN is unreachable), applies every later map as a diff,
 * publishes this node's endpoints when they change, and turns the ACL policy into the packet
 * filter. The engine never sees a DWN; the control client never sees a packet.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshdError } from '../errors.js';
import { backoffDelay } from '../util/backoff.js';
import { ControlClient } from '../control/control-client.js';
import { localNodeInfo } from '../control/device-records.js';
import { requireJoinedNetwork } from '../control/local-state.js';
import { networkDir } from '../control/session.js';
import type { NetworkMap } from '../control/netmap.js';
import type { EndpointRecord, PublicEndpoint } from '../control/records.js';
import { DataPlane } from '../engine/dataplane.js';
import { compileFilter, PacketFilter } from '../engine/filter/index.js';
import type { LocalEndpoints } from '../engine/magicsock/magicsock.js';
import type { RelayServer } from '../engine/relay/server.js';
import { removeStaleTun } from '../engine/tun/ip-command.js';
import { wgKeyToBase64 } from '../identity/keys.js';
import { checkAdvertisedRoutes, exitNodeCarriesIPv6, HostRouting, hostPrefixes, pickExitNode, routingStatusOf } from './agent-routing.js';
import { dnsPortFromEnv, endpointHeartbeatMs, interfaceAddresses, relayUrlFor } from './agent-host.js';
import { LinkWatcher } from './link-watch.js';
import { ownerRoutes } from './agent-owner-routes.js';
import type { AgentOptions, AgentStatus } from './agent-types.js';
export type { AgentOptions, AgentPeerStatus, AgentRoutingStatus, AgentStatus, RoutingOptions } from './agent-types.js';
import { TUNNEL_SOCKET_MARK } from './routing/exit-client.js';
import { joinDeviceGroup, MESHD_DEVICE_GROUP, otherMeshdAddresses, otherTuns, pickTunName, tunPrefixClash } from './host-tuns.js';
import { splitHostPort } from '../util/host-port.js';
import { tryParsePrefix } from '../util/prefix.js';
import { resetHttpConnections } from './http-connections.js';
import { configFromMap } from './map-to-config.js';
import { nameTableFromMap } from './map-to-dns.js';
import { MeshDns, readAcceptDns, writeAcceptDns } from '../dns/mesh-dns.js';
import type { DaemonMetrics } from './metrics.js';
import { pingRoute } from './ping.js';
import { PeerChangeLog, peerChangesRoute } from './peer-changes.js';
import { DepartedPeers, departedNode } from './peer-query.js';
import { RecentEvents } from './recent-events.js';
import type { UiServer } from './ui-server.js';
import { startAgentUi } from './agent-ui.js';
import { peerStatuses, silentPeers } from './agent-status.js';
import { nodeRecords } from '../control/model.js';
import type { AgentLike } from './daemon.js';
import { EmbeddedDwnKeeper } from './dwn-keeper.js';
import { HeapTrimmer } from './heap-trim.js';
import type { Logger } from './log.js';

/**
 * Where the embedded DWN listens when this node hosts the network's DWN: every address, since
 * the other machines of the network must reach it.
 */
const DEFAULT_DWN_LISTEN = '0.0.0.0';

/** How long `start` waits for the first endpoint record to be written before going on. */
const FIRST_PUBLISH_WAIT_MS = 3000;
/** Longest wait between retries of a failed endpoint write. */
const PUBLISH_RETRY_MAX_MS = 30_000;

export class MeshAgent implements AgentLike {
  private opts: AgentOptions;
  private control: ControlClient | undefined;
  private dataplane: DataPlane | undefined;
  private dwn: EmbeddedDwnKeeper | undefined;
  private relayServer: RelayServer | undefined;
  /** The URL other nodes reach this node's relay at (announced in the relay record). */
  private relayUrl: string | undefined;
  private relayFingerprint: string | null = null;
  private readonly filter = new PacketFilter();
  /** Returns the C heap's freed pages after start-up and each map (a smaller resident set). */
  private readonly trimmer = new HeapTrimmer();
  private map: NetworkMap | undefined;
  private applying: Promise<void> = Promise.resolve();
  private appliedHash: string | null = null;
  private unsubscribe: (() => void) | undefined;
  private policyVersion: number | null = null;
  private stopped = false;
  private links: LinkWatcher | undefined;
  private publishSeq = 0;
  private publishRetry: NodeJS.Timeout | undefined;
  private dns: MeshDns | undefined;
  private hostRouting: HostRouting | undefined;

  /** The TUN device: --tun, else the first free meshdN (known once start() picked it). */
  private tunName: string;
  /** Where the daemon's own files are (DNS state, routing journal): its network's slot. */
  private readonly runDir: string;
  /** False when another meshd tunnel on the host holds the mesh IPv6 prefix (it is shared). */
  private ipv6 = true;
  /** Prometheus metrics (prom-client), loaded by the first scrape: most daemons are never scraped. */
  private metrics: Promise<DaemonMetrics> | undefined;
  private readonly departed = new DepartedPeers();
  /** When each peer's endpoints appeared and when peers left, by this daemon's clock. */
  private readonly peerChanges = new PeerChangeLog();
  /** The last info/warn/error log records (the dashboard's recent events). */
  private readonly events = new RecentEvents();
  /** The dashboard's listener, started by the first `meshd ui`. */
  private ui: Promise<UiServer> | undefined;

  constructor(opts: AgentOptions) {
    this.opts = { ...opts, log: this.events.tee(opts.log) };
    this.tunName = opts.tunName ?? 'meshd0';
    this.runDir = opts.runDir ?? opts.ctx.home;
  }

  private get log(): Logger {
    return this.opts.log;
  }

  async start(): Promise<void> {
    const { ctx } = this.opts;
    const joined = requireJoinedNetwork(networkDir(ctx));
    if (joined.embedded) {
      const listen = this.opts.dwnListen ?? joined.dwnListen ?? DEFAULT_DWN_LISTEN;
      this.dwn = new EmbeddedDwnKeeper(ctx.home, joined.endpoint, listen, this.log);
      await this.dwn.start();
    }
    const heartbeatMs = endpointHeartbeatMs(process.env);
    const control = await ControlClient.open({ ctx, joined, ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) });
    this.control = control;
    this.unsubscribe = control.on((e) => {
      if (e.type === 'map') this.onMap(e.map, e.source);
      else if (e.type === 'connection') this.log.info(e.up ? 'dwn.connected' : 'dwn.disconnected', { reconnect: e.reconnect, retryInMs: e.retryInMs, error: e.error });
      else if (e.type === 'error') this.log.warn('control.error', { during: e.during, error: e.error.message });
      else if (e.type === 'admission') {
        for (const r of e.results) {
          if (r.admitted) this.log.info('invite.admitted', { did: r.did, invite: r.inviteId, ...(r.member ? { member: r.member } : {}) });
          else if (r.pending) this.log.info('invite.waiting-approval', { did: r.did, member: r.member, hint: `meshd peer approve ${r.did}` });
          else this.log.warn('invite.refused', { did: r.did, invite: r.inviteId, reason: r.reason });
        }
      } else if (e.type === 'expired') this.log.info('peer.expired', { dids: e.dids });
      else if (e.type === 'revoked') {
        this.log.warn('control.revoked', { hint: 'this device was removed from the network' });
        // no peers from now on: exit routes into the tunnel would only black-hole the host
        this.applying = this.applying.then(() => this.hostRouting?.clear()).catch((err: Error) => this.log.error('routing.clear-failed', { error: err.message }));
        this.dataplane?.setConfig({ peers: [] }).then(
          (r) => this.log.info('map.applied', { reason: 'revoked', peers: r.applied, removed: r.removed }),
          (err: Error) => this.log.error('map.apply-failed', { reason: 'revoked', error: err.message }),
        );
      }
    });
    const cached = control.start();
    let map = cached;
    if (!map) {
      try {
        map = await control.waitForMap(this.opts.firstMapTimeoutMs ?? 60_000, true);
      } catch (e) {
        throw new MeshdError('E_DWN_UNREACHABLE', `no network map: cannot reach the DWN at ${joined.endpoint} and nothing is cached`, {
          hint: 'check that the DWN is up, then run `meshd up` again',
          cause: e,
        });
      }
    }
    const self = map.self;
    if (!self) {
      throw new MeshdError('E_NO_NETWORK', 'this device is not an active node of the network (removed, expired or not yet approved)', {
        hint: 'ask the network owner to run `meshd peer add` for this device',
      });
    }
    if (this.opts.relay) {
      const r = this.opts.relay;
      this.relayUrl = await relayUrlFor(r, joined.endpoint);
      // HTTPS with a self-signed certificate kept in HOME/relay; its pin goes into the relay record.
      // the relay server's code is loaded only by the daemons that run one
      const [{ loadOrCreateRelayCertificate }, { startRelayServer }] = await Promise.all([import('../engine/relay/tls-cert.js'), import('../engine/relay/server.js')]);
      const cert = r.insecureHttp ? null : loadOrCreateRelayCertificate(join(this.opts.ctx.home, 'relay'), { commonName: 'meshd-relay', altNames: [hostname().slice(0, 253)] });
      this.relayFingerprint = cert?.fingerprint ?? null;
      this.relayServer = await startRelayServer({ host: r.host, httpPort: r.port, stunPort: r.stunPort, log: this.log.child('relay-server'), ...(cert ? { tls: { cert: cert.certPem, key: cert.keyPem } } : {}) });
      this.log.info('relay.serving', { ...this.relayServer.address() });
    }
    const routing = this.opts.routing;
    if (routing) checkAdvertisedRoutes(routing, map.network.meshCIDR, map.network.meshCIDR6);
    // routes and firewall rules a crashed run left are undone before anything else
    if (this.opts.tunName === undefined) this.tunName = await pickTunName();
    const tunName = this.tunName;
    const exitNodeIPv6 = await exitNodeCarriesIPv6(routing, this.log);
    this.hostRouting = new HostRouting(this.runDir, tunName, routing, this.log, exitNodeIPv6);
    await this.hostRouting.recover();
    this.checkPrefixes(map);
    if (await removeStaleTun(tunName)) this.log.warn('tun.leftover-removed', { tun: tunName });
    const bits = tryParsePrefix(map.network.meshCIDR, { hostBits: 'reject' })?.bits ?? 16;
    const bits6 = tryParsePrefix(map.network.meshCIDR6, { hostBits: 'reject' })?.bits ?? 48;
    this.dataplane = await DataPlane.start({
      privateKey: ctx.profile.keys.xPrivate,
      tunName,
      addresses: [`${self.meshIP}/${bits}`, ...(this.ipv6 ? [`${self.meshIP6}/${bits6}`] : [])],
      excludeIp: (ip) => otherMeshdAddresses(tunName).has(ip),
      listenPort: map.network.listenPort,
      mtu: this.opts.mtu,
      filter: this.filter,
      log: this.log.child('dataplane'),
      ...(routing?.exitNode ? { socketMark: TUNNEL_SOCKET_MARK } : {}),
    });
    this.log.info('dataplane.up', { tun: tunName, meshIP: self.meshIP, port: this.dataplane.listenPort, ipv6: this.ipv6 });
    await joinDeviceGroup(tunName).catch((e: Error) => this.log.warn('tun.group-failed', { tun: tunName, error: e.message }));
    this.checkIsolation();
    this.dataplane.onLocalEndpointsChanged((ep) => this.publishEndpoints(ep));
    await this.applyMap(map);
    await this.startDns(this.map ?? map);
    // peers learn where to answer from this record: a device that joined a moment ago is not
    // "up" before they can (its first handshake would be lost and retried only after 5 s)
    await Promise.race([this.publishEndpoints(this.dataplane.localEndpoints()), sleep(FIRST_PUBLISH_WAIT_MS, undefined, { ref: false })]);
    this.watchLinks();
    if (this.relayServer && this.opts.relay) void this.announceRelay(this.opts.relay);
    const offers = {
      ...(routing && (routing.advertiseRoutes.length > 0 || routing.advertiseExitNode)
        ? { capabilities: [...(routing.advertiseRoutes.length > 0 ? (['subnet-router'] as const) : []), ...(routing.advertiseExitNode ? (['exit-node'] as const) : [])] }
        : {}),
      ...(routing && routing.advertiseRoutes.length > 0 ? { routes: routing.advertiseRoutes } : {}),
      ...(exitNodeIPv6 ? { exitNodeIPv6: true } : {}),
    };
    control
      .publishNodeInfo(localNodeInfo({ ...(this.opts.hostname ?? joined.hostname ? { hostname: this.opts.hostname ?? joined.hostname! } : {}), ...offers }))
      .catch((e: Error) => this.log.warn('nodeinfo.publish-failed', { error: e.message }));
    this.trimmer.soon();
    this.trimmer.watch();
  }

  /** Mesh DNS on this node's mesh IP (never fatal: without it the mesh works by address). */
  private async startDns(map: NetworkMap): Promise<void> {
    const self = map.self;
    const port = this.opts.dnsPort ?? dnsPortFromEnv(process.env);
    if (!self || port === 0) return;
    const stateDir = join(this.runDir, 'dns');
    if (this.opts.acceptDns !== undefined) writeAcceptDns(stateDir, this.opts.acceptDns);
    try {
      this.dns = await MeshDns.start({
        stateDir,
        link: this.tunName,
        address: self.meshIP,
        ...(this.ipv6 && self.meshIP6 ? { address6: self.meshIP6 } : {}),
        acceptDns: this.opts.acceptDns ?? readAcceptDns(stateDir),
        table: nameTableFromMap(map),
        dnsServers: map.network.dnsServers,
        port,
        log: (level, event, fields) => this.log[level](event, fields),
      });
      const st = this.dns.status();
      this.log.info('dns.serving', { address: st.address, port: st.port, suffix: st.suffix, mode: st.mode, upstreams: st.upstreams });
    } catch (e) {
      this.log.error('dns.start-failed', { error: (e as Error).message, hint: (e as { hint?: string }).hint });
    }
  }

  /** `meshd up --hostname NAME` on a running daemon: publish the new name (peers see it with the next map). */
  private async rename(hostname: string): Promise<{ hostname: string }> {
    const c = this.ownerControl();
    this.opts = { ...this.opts, hostname };
    await c.publishNodeInfo(localNodeInfo({ hostname }));
    this.log.info('nodeinfo.renamed', { hostname });
    return { hostname };
  }

  /** Write (or refresh) the relay record for the relay this node runs. */
  private async announceRelay(r: NonNullable<AgentOptions['relay']>): Promise<void> {
    const url = this.relayUrl;
    if (url === undefined) return;
    try {
      const { publishRelay } = await import('../control/relay-ops.js');
      const pin = this.relayFingerprint !== null && url.startsWith('https:') ? { fingerprint: this.relayFingerprint } : {};
      const res = await publishRelay(this.opts.ctx, { url, region: `meshd-${hostname().slice(0, 40) || 'relay'}`, stunPort: r.stunPort, ...pin });
      this.log.info('relay.announced', { url, created: res.created });
    } catch (e) {
      this.log.warn('relay.announce-failed', { url, error: (e as Error).message });
    }
  }

  /**
   * A new or lost interface address (DHCP renewal, roaming between networks, `ip addr`) changes
   * our local endpoints: rediscover at once, which republishes the endpoint record and tells
   * active peers by disco, instead of waiting for the next periodic discovery (20–26 s). When an
   * address went away, connections bound to it are dead but look open: the DWN's HTTP
   * connections are dropped and its subscription reconnects first. Netlink events (link-watch.ts)
   * say when to look: an idle daemon does not wake to poll.
   */
  private watchLinks(): void {
    const tun = this.tunName;
    this.links = new LinkWatcher({
      addresses: () => interfaceAddresses(tun),
      log: this.log,
      onChange: (now, lost) => {
        if (this.stopped || !this.dataplane) return;
        this.log.info('link.changed', { addresses: [...now], lost });
        this.checkIsolation();
        if (lost.length > 0) {
          resetHttpConnections();
          this.control?.reconnect();
        }
        this.dataplane.rediscover().catch((e: Error) => this.log.warn('link.rediscover-failed', { error: e.message }));
      },
    });
  }

  /**
   * Refuse a network whose IPv4 mesh prefix overlaps one already on another tunnel of this host
   * (another network of this identity, another home's, or another VPN's). The mesh IPv6 prefix
   * is the same in every meshd network: the first tunnel to hold it keeps it, later ones run
   * IPv4 only.
   */
  private checkPrefixes(map: NetworkMap): void {
    const clash = tunPrefixClash(this.tunName, map.network.meshCIDR);
    if (clash) {
      throw new MeshdError('E_CONFIG_INVALID', `network "${map.network.name}" uses mesh prefix ${map.network.meshCIDR}, which overlaps ${clash.prefix} on ${clash.dev} (another network on this host)`, {
        hint: 'two networks on one host need prefixes that do not overlap, and a network\'s prefix is chosen when it is created (`meshd up --create NAME --cidr 10.201.0.0/16`); bring the other one down (`meshd down --network NAME`) or ask this network\'s owner',
      });
    }
    if (tunPrefixClash(this.tunName, map.network.meshCIDR6)) {
      this.ipv6 = false;
      this.log.warn('tun.ipv6-shared', { prefix: map.network.meshCIDR6, hint: 'another meshd network on this host holds the mesh IPv6 prefix: this one runs IPv4 only' });
    }
  }

  /** Drop forwarding between meshd tunnels while another one shares the host. */
  private checkIsolation(): void {
    const others = otherTuns(this.tunName).filter((t) => t.meshd);
    if (!this.hostRouting?.setIsolation(others.length > 0 ? MESHD_DEVICE_GROUP : null)) return;
    this.log.info('routing.isolation', { others: others.map((t) => t.dev) });
    const map = this.map;
    if (map && this.dataplane && !this.stopped) {
      // re-run the last sync with the new plan (a no-op when it was not applied yet)
      this.appliedHash = null;
      void this.applyMap(map);
    }
  }

  private onMap(map: NetworkMap, source: string): void {
    this.log.info('map.received', { source, hash: map.hash.slice(0, 12), peers: map.peers.length, epoch: map.epoch });
    this.peerChanges.noteMap(map);
    if (!this.dataplane) return; // the first map is applied by start()
    void this.applyMap(map);
  }

  /**
   * Apply maps one at a time, in order; the newest wins. A map is applied as far as it can be:
   * a peer field that does not parse, or a peer the data plane cannot take, is logged
   * (`map.peer-skipped`) and left out while the rest of the map applies.
   */
  private applyMap(map: NetworkMap): Promise<void> {
    this.departed.update(this.map?.peers, map.peers);
    this.map = map;
    this.applying = this.applying.then(async () => {
      if (this.stopped || !this.dataplane) return;
      const latest = this.map!;
      const seq = this.peerChanges.seq;
      if (latest.hash === this.appliedHash) return;
      const exitDid = this.opts.routing?.exitNode ? pickExitNode(latest, this.opts.routing.exitNode) : null;
      if (this.opts.routing?.exitNode && exitDid === null) this.log.warn('exit-node.unknown', { exitNode: this.opts.routing.exitNode, hint: 'no peer (or more than one) has that host name, and none that mesh IP or DID; see `meshd status`' });
      const cfg = configFromMap(latest, { exitNode: exitDid, localPrefixes: [...hostPrefixes(this.tunName), ...(this.opts.routing?.advertiseRoutes ?? [])] });
      for (const p of cfg.problems) this.log.warn('map.peer-skipped', { peer: p.peer, field: p.field, reason: p.reason, peerSkipped: p.peerSkipped });
      let policy: ReturnType<typeof compileFilter> | null;
      try {
        policy = cfg.filter ? compileFilter(cfg.filter) : null;
      } catch (e) {
        // A policy that does not compile must not open everything: nothing inbound is accepted.
        this.log.error('map.policy-invalid', { error: (e as Error).message, policy: latest.filter.policyVersion });
        policy = compileFilter({ defaultAction: 'drop', rules: [] });
      }
      this.filter.setPolicy(policy);
      this.policyVersion = latest.filter.policyVersion;
      try {
        this.dns?.update(nameTableFromMap(latest), latest.network.dnsServers);
      } catch (e) {
        this.log.warn('dns.update-failed', { error: (e as Error).message });
      }
      try {
        const res = await this.dataplane.setConfig({ peers: cfg.peers, relays: cfg.relays });
        for (const f of res.failed) this.log.warn('map.peer-skipped', { peer: f.publicKey, field: 'dataplane', reason: f.error, peerSkipped: true });
        if (res.relayError !== null) this.log.warn('map.relays-failed', { error: res.relayError });
        this.appliedHash = latest.hash;
        this.peerChanges.noteApplied(seq);
        this.log.info('map.applied', {
          hash: latest.hash.slice(0, 12),
          peers: res.applied,
          added: res.added,
          updated: res.updated,
          removed: res.removed,
          skipped: cfg.problems.filter((p) => p.peerSkipped).length + res.failed.length,
          problems: cfg.problems.length + res.failed.length,
          relays: cfg.relays.length,
          policy: this.policyVersion,
        });
        this.trimmer.soon();
      } catch (e) {
        this.log.error('map.apply-failed', { error: (e as Error).message });
      }
      if (!this.stopped && this.dataplane && this.hostRouting) {
        await this.hostRouting.sync(latest, this.dataplane, cfg.exitNode, this.control?.session.joined.endpoint, cfg.relays.map((r) => r.url));
      }
    });
    return this.applying;
  }

  /**
   * Write the endpoint record. A failed write (DWN unreachable, a connection that died with a
   * local address) is retried with backoff — 1 s doubling to 30 s — until it succeeds or newer
   * endpoints replace it; the peers cannot find us at new endpoints they are never told.
   */
  private publishEndpoints(ep: LocalEndpoints, attempt = 0): Promise<void> {
    if (!this.control || this.stopped) return Promise.resolve();
    if (attempt === 0) {
      this.publishSeq++;
      clearTimeout(this.publishRetry);
    }
    const seq = this.publishSeq;
    const publicEndpoints: PublicEndpoint[] = [];
    for (const s of ep.publicEndpoints) {
      const parsed = splitHostPort(s);
      if (parsed) publicEndpoints.push({ address: parsed.host, port: parsed.port, source: 'stun', priority: 10 });
    }
    const rec: Omit<EndpointRecord, 'updatedAt'> = {
      publicEndpoints,
      localEndpoints: ep.localEndpoints.slice(0, 16),
      natType: ep.natType,
      discoKey: ep.discoKey,
      ...(ep.preferredRelay ? { preferredRelay: ep.preferredRelay } : {}),
    };
    return this.control.publishEndpoint(rec).then(
      () => this.log.info('endpoint.published', { public: ep.publicEndpoints, local: ep.localEndpoints.length, nat: ep.natType, attempt }),
      (e: Error) => {
        if (this.stopped || seq !== this.publishSeq) return; // newer endpoints were written since
        const retryInMs = backoffDelay(attempt, { initialMs: 1000, maxMs: PUBLISH_RETRY_MAX_MS });
        this.log.warn('endpoint.publish-failed', { error: e.message, attempt, retryInMs: Math.round(retryInMs) });
        this.publishRetry = setTimeout(() => this.publishEndpoints(ep, attempt + 1), retryInMs);
        this.publishRetry.unref();
      },
    );
  }

  /** `silent`: keys of peers that did not answer a liveness check just now (offline). */
  status(silent: ReadonlySet<string> = new Set()): AgentStatus {
    const profile = this.opts.ctx.profile;
    const map = this.control?.map ?? this.map; // the freshest online flags
    const dp = this.dataplane?.status();
    const peers = peerStatuses(map, dp, silent, (did) => this.dns?.nameOf(did) ?? null);
    let dataplane: AgentStatus['dataplane'] = null;
    if (dp) {
      const { peers: dpPeers, ...rest } = dp;
      dataplane = { ...rest, peerKeys: dpPeers.map((p) => p.publicKey) };
    }
    const joined = this.control?.session.joined;
    return {
      identity: { did: profile.did, wireguardKey: wgKeyToBase64(profile.keys.xPublic), meshIP: map?.self?.meshIP ?? null, meshIP6: map?.self?.meshIP6 ?? null },
      network: map && joined
        ? { id: map.networkId, name: map.network.name, meshCIDR: map.network.meshCIDR, anchor: map.anchor, epoch: map.epoch, endpoint: joined.endpoint, mapHash: map.hash, mapSource: this.control?.stats.mapSource ?? null }
        : null,
      dataplane,
      control: this.control?.stats ?? null,
      filter: { ...this.filter.counters(), policyVersion: this.policyVersion },
      relayServer: this.relayServer ? { url: this.relayUrl ?? this.relayServer.address().url, stunPort: this.relayServer.address().stunPort } : null,
      dns: this.dns ? { ...this.dns.status(), name: this.dns.nameOf(profile.did) } : null,
      routing: this.hostRouting?.status() ?? routingStatusOf(this.opts.routing),
      peers,
    };
  }

  /**
   * status() once the peers not heard from in the last moments were pinged and had a moment to
   * answer: one that does not answer is offline, however recently it was heard before.
   */
  async liveStatus(): Promise<AgentStatus> {
    const dp = this.dataplane;
    return this.status(dp ? await silentPeers(dp) : new Set());
  }

  routes() {
    return {
      'GET /metrics': async () => {
        this.metrics ??= import('./metrics.js').then(({ DaemonMetrics }) => new DaemonMetrics(() => this.status()));
        return (await this.metrics).render();
      },
      'POST /v0/ping': (body: unknown) =>
        pingRoute(
          {
            map: () => this.control?.map ?? this.map,
            departed: (query) => {
              const s = this.control?.session;
              const nodes = s ? nodeRecords(s.set, s.joined.networkId, s.joined.anchor).map((r) => r.data) : [];
              return departedNode(nodes, query, Date.now()) ?? this.departed.find(query);
            },
            online: (key) => this.status().peers.find((p) => p.wireguardKey === key)?.online ?? false,
            dataplane: () => this.dataplane,
          },
          body,
        ),
      'GET /v0/peers': async () => {
        const peers = (await this.liveStatus()).peers;
        const c = this.control;
        if (!c || c.session.role !== 'owner') return { peers };
        // the owner also sees members and the device requests waiting for approval
        const { peerListing } = await import('../control/peer-ops.js');
        const l = peerListing(c.session, Date.now());
        return { peers, members: l.members, pending: l.pending };
      },
      'POST /v0/peer/changes': (body: unknown) => peerChangesRoute(this.peerChanges, body),
      'POST /v0/hostname': (body: unknown) => {
        const b = body as { as?: unknown; hostname?: unknown } | null;
        if (typeof b !== 'object' || b === null || typeof b.hostname !== 'string') throw new MeshdError('E_USAGE', 'expected {"as": DID, "hostname": NAME}');
        if (b.as !== this.opts.ctx.profile.did) throw new MeshdError('E_WRONG_PROFILE', 'the daemon runs another identity');
        return this.rename(b.hostname);
      },
      ...ownerRoutes(this.opts.ctx.profile.did, () => this.ownerControl()),
      // `meshd ui`: the dashboard's loopback listener (started now if need be) and a one-time link
      'POST /v0/ui': async () => {
        const ui = await this.startUi();
        return { url: ui.link(), port: ui.port };
      },
    };
  }

  private startUi(): Promise<UiServer> {
    this.ui ??= startAgentUi({
      log: this.log.child('ui'),
      routes: this.routes(),
      as: this.opts.ctx.profile.did,
      dataplane: () => this.dataplane,
      control: () => this.control,
      status: (silent) => this.status(silent),
      hostname: () => (this.control?.map ?? this.map)?.self?.hostname ?? this.opts.hostname ?? null,
      events: () => this.events.last(),
    });
    this.ui.catch(() => (this.ui = undefined)); // a failed start may be tried again
    return this.ui;
  }

  private ownerControl(): ControlClient {
    if (!this.control) throw new MeshdError('E_DAEMON', 'the daemon is still starting');
    return this.control;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.trimmer.stop();
    this.links?.stop();
    await this.ui?.then((u) => u.close()).catch(() => undefined);
    clearTimeout(this.publishRetry);
    this.unsubscribe?.();
    await this.applying.catch(() => undefined);
    const steps: Array<[string, (() => Promise<void>) | undefined]> = [
      // the host's DNS first, while the server it points at still answers
      ['dns', this.dns && (() => this.dns!.stop())],
      // the host's routes first: exit routes into a TUN about to go would black-hole traffic
      ['routing', this.hostRouting && (() => this.hostRouting!.clear())],
      ['dataplane', this.dataplane && (() => this.dataplane!.stop())],
      ['control', this.control && (() => this.control!.stop())],
      ['relay', this.relayServer && (() => this.relayServer!.stop())],
      ['dwn', this.dwn && (() => this.dwn!.stop())],
    ];
    for (const [name, step] of steps) {
      if (!step) continue;
      try {
        await step();
      } catch (e) {
        this.log.warn('agent.stop-step-failed', { step: name, error: (e as Error).message });
      }
    }
  }
}


/**
 * Routes and exit nodes on this host for the agent: the options checked against the network,
 * the exit node a user named, and the host's routes and firewall kept in line with the map
 * (through routing/os-routing.ts and its undo journal).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { MeshdError } from '../errors.js';
import type { MapPeer, NetworkMap } from '../control/netmap.js';
import { subnetRouteProblem } from '../control/routes.js';
import { formatPrefix, tryParsePrefix } from '../util/prefix.js';
import type { AgentRoutingStatus, RoutingOptions } from './agent-types.js';
import type { Logger } from './log.js';
import { hasIPv6DefaultRoute, kernelHasIPv6 } from './routing/ipv6-host.js';
import { OsRouting, type RoutingPlan } from './routing/os-routing.js';

/** What the host's routing needs from the data plane of the moment. */
export interface RoutingDataPlane {
  listenPort: number;
  socketMark: number;
}

/** The exit node in use as the data plane has it: its DID, and whether it carries IPv6. */
export interface ExitInUse {
  did: string;
  ipv6: boolean;
}

type RoutingState = { routes: string[]; exitNodeApproved: boolean; exitNode: string | null; exitNodeIPv6: AgentRoutingStatus['exitNodeIPv6']; error: string | null };
const NOTHING_APPLIED: RoutingState = { routes: [], exitNodeApproved: false, exitNode: null, exitNodeIPv6: null, error: null };

/** What `status` shows: what this run offers and what of it is in use (nothing before start). */
export function routingStatusOf(options: RoutingOptions | undefined, state: RoutingState = NOTHING_APPLIED, advertisesExitNodeIPv6 = false): AgentRoutingStatus {
  return {
    advertisedRoutes: options?.advertiseRoutes ?? [],
    routes: state.routes,
    advertisesExitNode: options?.advertiseExitNode ?? false,
    advertisesExitNodeIPv6,
    exitNodeApproved: state.exitNodeApproved,
    exitNodeWanted: options?.exitNode ?? null,
    exitNode: state.exitNode,
    exitNodeIPv6: state.exitNodeIPv6,
    error: state.error,
  };
}

/**
 * Whether this node, offered as an exit node, carries IPv6: it has an IPv6 default route when
 * it starts. Logged either way (clients block IPv6 beyond the mesh through an exit node without).
 */
export async function exitNodeCarriesIPv6(options: RoutingOptions | undefined, log: Logger): Promise<boolean> {
  if (options?.advertiseExitNode !== true) return false;
  const yes = await hasIPv6DefaultRoute();
  if (yes) log.info('exit-node.ipv6', { carries: true });
  else log.warn('exit-node.ipv6', { carries: false, hint: 'this host has no IPv6 default route: as an exit node it carries IPv4 only, and its clients get no IPv6 beyond the mesh; give it an IPv6 uplink and restart meshd to offer IPv6' });
  return yes;
}

/** The host's routes and firewall for one agent run; `sync` after every applied map. */
export class HostRouting {
  private readonly os: OsRouting;
  private state: RoutingState = NOTHING_APPLIED;
  private bypassCache: { key: string; ips: string[] } = { key: '', ips: [] };
  /** meshd's device group while another meshd tunnel shares the host (see routing/isolation.ts). */
  private isolateGroup: number | null = null;

  constructor(
    home: string,
    private readonly tunName: string,
    private readonly options: RoutingOptions | undefined,
    private readonly log: Logger,
    /** As an exit node, this host carries IPv6 too (exitNodeCarriesIPv6). */
    private readonly exitNodeIPv6 = false,
  ) {
    this.os = new OsRouting(home, (event, fields) => log.warn(event, fields));
  }

  /** Undo what a crashed run left, before anything else. */
  recover(): Promise<void> {
    return this.os.recover();
  }

  /** Take everything back (stop, or this device was removed). */
  clear(): Promise<void> {
    return this.os.clear();
  }

  status(): AgentRoutingStatus {
    return routingStatusOf(this.options, this.state, this.exitNodeIPv6);
  }

  /** Whether forwarding between meshd tunnels must be dropped; true when that changed. */
  setIsolation(group: number | null): boolean {
    if (group === this.isolateGroup) return false;
    this.isolateGroup = group;
    return true;
  }

  /**
   * Bring the host's routes and firewall in line with the map: forwarding for the routes (and
   * exit node) of ours the owner approved and this run advertises; exit routes when the chosen
   * exit node is in the data plane (IPv6 through it when it carries IPv6, else blocked beyond the
   * mesh so that none leaks outside the tunnel). A failure is logged and shown in `status`; the
   * tunnel stays.
   */
  async sync(map: NetworkMap, dataplane: RoutingDataPlane, exit: ExitInUse | null, dwnEndpoint: string | undefined, relayUrls: string[]): Promise<void> {
    const r = this.options;
    const self = map.self;
    const routes = (self?.routes ?? []).filter((x) => r?.advertiseRoutes.includes(x) === true);
    const exitNodeApproved = self?.exitNode === true && r?.advertiseExitNode === true;
    const exitDid = exit?.did ?? null;
    const ipv6 = exit === null || !kernelHasIPv6() ? null : exit.ipv6 ? 'exit' : 'block';
    const plan: RoutingPlan = {
      router:
        routes.length > 0 || exitNodeApproved
          ? { tun: this.tunName, meshCIDR: map.network.meshCIDR, meshCIDR6: map.network.meshCIDR6, routes, exitNode: exitNodeApproved, exitNode6: exitNodeApproved && this.exitNodeIPv6, snat: r?.snatSubnetRoutes ?? true }
          : null,
      exit:
        exit !== null
          ? {
              tun: this.tunName,
              listenPort: dataplane.listenPort,
              socketMark: dataplane.socketMark,
              bypass: await this.bypassAddresses(dwnEndpoint, relayUrls),
              allowLanAccess: r?.exitNodeAllowLanAccess ?? false,
              ipv6,
              tunRoutes6: ipv6 === 'block' ? tunRoutes6(map) : [],
            }
          : null,
      ...(this.isolateGroup !== null ? { isolate: { group: this.isolateGroup } } : {}),
    };
    const exitNodeIPv6 = ipv6 === 'exit' ? 'exit-node' : ipv6 === 'block' ? 'blocked' : null;
    try {
      if (await this.os.apply(plan)) {
        this.log.info('routing.applied', { routes, exitNode: exitNodeApproved, usingExitNode: exitDid, exitNodeIPv6, bypass: plan.exit?.bypass, isolated: plan.isolate !== undefined });
        if (ipv6 === 'block') {
          this.log.warn('exit-node.ipv6-blocked', {
            exitNode: exitDid,
            hint: 'the exit node carries no IPv6 (it has no IPv6 uplink): IPv6 beyond the mesh is unreachable from this host while it is used, so none leaks outside the tunnel',
          });
        }
      }
      this.state = { routes, exitNodeApproved, exitNode: exitDid, exitNodeIPv6, error: null };
    } catch (e) {
      this.state = { routes: [], exitNodeApproved: false, exitNode: null, exitNodeIPv6: null, error: (e as Error).message };
      this.log.error('routing.apply-failed', { error: (e as Error).message, hint: (e as MeshdError).hint });
    }
  }

  /**
   * The addresses (IPv4 and IPv6) that keep the host's own routes while an exit node is in use:
   * the DWN's and the relays' (their TCP connections must not enter the tunnel they may be
   * carrying: over a relayed path that would loop).
   */
  private async bypassAddresses(dwn: string | undefined, relayUrls: string[]): Promise<string[]> {
    const hosts = new Set<string>();
    for (const u of [...(dwn ? [dwn] : []), ...relayUrls]) {
      try {
        hosts.add(new URL(u).hostname.replace(/^\[|\]$/g, ''));
      } catch {
        // not a URL: nothing to keep out of the tunnel
      }
    }
    const key = [...hosts].sort().join(',');
    if (key === this.bypassCache.key) return this.bypassCache.ips;
    const ips = new Set<string>();
    for (const h of hosts) {
      if (isIP(h) !== 0) ips.add(h);
      else {
        const found = await lookup(h, { all: true }).catch(() => []);
        for (const a of found) ips.add(a.address);
      }
    }
    this.bypassCache = { key, ips: [...ips].sort() };
    return this.bypassCache.ips;
  }
}

/**
 * The IPv6 prefixes that go into the TUN besides a default route: the mesh's own and the peers'
 * approved IPv6 subnet routes (kept reachable when IPv6 beyond the mesh is blocked).
 */
export function tunRoutes6(map: NetworkMap): string[] {
  const out = new Set<string>([map.network.meshCIDR6]);
  for (const p of map.peers) for (const r of p.routes ?? []) if (r.includes(':')) out.add(r);
  return [...out].sort();
}

/** `--advertise-routes` checked against the network's own prefixes (known once the map is). */
export function checkAdvertisedRoutes(r: RoutingOptions, meshCIDR: string, meshCIDR6: string): void {
  for (const route of r.advertiseRoutes) {
    const why = subnetRouteProblem(route, [meshCIDR, meshCIDR6]);
    if (why !== null) {
      throw new MeshdError('E_CONFIG_INVALID', `--advertise-routes: ${route} ${why}`, { hint: 'run `meshd up` again with prefixes outside the mesh, e.g. 192.168.1.0/24' });
    }
  }
}

/**
 * The DID of the peer `want` names — a DID, a mesh IP, or a host name (case-insensitive, with
 * or without the domain) — or null when no peer of the map matches.
 */
export function pickExitNode(map: NetworkMap, want: string): string | null {
  const w = want.trim();
  const lower = w.toLowerCase();
  const peers = map.peers;
  // a host name shared by several peers names none of them
  const one = (xs: MapPeer[]): MapPeer | undefined => (xs.length === 1 ? xs[0] : undefined);
  const hit =
    peers.find((p) => p.did === w) ??
    peers.find((p) => p.meshIP === w || p.meshIP6 === w) ??
    one(peers.filter((p) => p.hostname !== null && p.hostname.toLowerCase() === lower)) ??
    one(peers.filter((p) => p.hostname !== null && p.hostname.toLowerCase().split('.')[0] === lower));
  return hit?.did ?? null;
}

/** The prefixes of this host's own interfaces except the TUN ("192.168.1.0/24"). */
export function hostPrefixes(tun: string): string[] {
  const out = new Set<string>();
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (name === tun || !list) continue;
    for (const a of list) {
      if (a.internal || a.cidr === null) continue;
      const p = tryParsePrefix(a.cidr, { hostBits: 'mask' }); // an interface address: its network
      if (p === null || p.bits === 0) continue;
      out.add(formatPrefix(p));
    }
  }
  return [...out];
}

/**
 * Network map (control plane) → data-plane configuration. Pure functions: the agent calls
 * them on every new map and hands the result to the DataPlane, which applies the difference.
 */
import type { CompiledFilter as AclFilter, CompiledMatch } from '../control/acl.js';
import type { MapPeer, NetworkMap } from '../control/netmap.js';
import type { FilterRuleSpec, FilterSpec } from '../engine/filter/index.js';
import { joinHostPort } from '../util/host-port.js';

export interface PeerConfig {
  publicKey: string;
  allowedIps: string[];
  discoKey: string;
  endpoints: string[];
  homeRelay?: string;
  persistentKeepalive?: number;
}

export interface RelayConfig {
  url: string;
  stunPort?: number;
  region?: string;
}

export interface DataPlaneConfigFromMap {
  peers: PeerConfig[];
  relays: RelayConfig[];
  /** null: no policy record, allow everything (spec 5.3). */
  filter: FilterSpec | null;
}

function hostPrefix(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

/** Candidate endpoints of a peer: its public endpoints (by priority), then its local ones. */
export function peerEndpoints(p: MapPeer): string[] {
  const out: string[] = [];
  for (const e of p.endpoints) out.push(joinHostPort(e.address, e.port));
  for (const l of p.localEndpoints) out.push(l);
  return [...new Set(out)];
}

function side(m: CompiledMatch): { peers: string[] | '*'; cidrs: string[] } {
  return m.any ? { peers: '*', cidrs: [] } : { peers: m.peers, cidrs: m.cidrs };
}

/** The control plane's compiled ACL as the engine filter's spec. */
export function filterSpecFromAcl(f: AclFilter): FilterSpec | null {
  if (f.policyVersion === null) return null;
  const rules: FilterRuleSpec[] = f.rules.map((r) => {
    const src = side(r.src);
    const dst = side(r.dst);
    const rule: FilterRuleSpec = {
      action: r.action,
      srcPeers: src.peers,
      srcCidrs: src.cidrs,
      dstCidrs: r.dst.any ? '*' : dst.cidrs,
      proto: r.proto,
    };
    if (r.dstPorts) rule.dstPorts = r.dstPorts.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`));
    if (r.srcPorts) rule.srcPorts = r.srcPorts.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`));
    // A side that selected nothing (e.g. a group with no devices yet) matches nothing.
    if (!r.src.any && src.peers !== '*' && src.peers.length === 0 && src.cidrs.length === 0) rule.srcCidrs = ['0.0.0.0/32'];
    if (!r.dst.any && dst.cidrs.length === 0) rule.dstCidrs = ['0.0.0.0/32'];
    return rule;
  });
  return { defaultAction: f.defaultAction, rules };
}

export function configFromMap(map: NetworkMap, opts: { persistentKeepalive?: number } = {}): DataPlaneConfigFromMap {
  const peers: PeerConfig[] = [];
  for (const p of map.peers) {
    if (map.self && p.did === map.self.did) continue;
    const allowedIps = [hostPrefix(p.meshIP)];
    if (p.meshIP6) allowedIps.push(hostPrefix(p.meshIP6));
    const pc: PeerConfig = {
      publicKey: p.wireguardKey,
      allowedIps,
      // Until a peer publishes its endpoint record it has no disco key; it is still a WireGuard
      // peer (handshakes from it are accepted), only path discovery waits.
      discoKey: p.discoKey ?? '',
      endpoints: peerEndpoints(p),
    };
    if (p.preferredRelay) pc.homeRelay = p.preferredRelay;
    if (opts.persistentKeepalive) pc.persistentKeepalive = opts.persistentKeepalive;
    peers.push(pc);
  }
  const relays = new Map<string, RelayConfig>();
  for (const r of map.relays) if (!r.stunOnly) relays.set(r.url, { url: r.url, stunPort: r.stunPort, region: r.region });
  for (const url of map.network.defaultRelays) if (!relays.has(url)) relays.set(url, { url });
  return { peers, relays: [...relays.values()], filter: filterSpecFromAcl(map.filter) };
}

/**
 * Network map (control plane) → data-plane configuration: the one place where the map's text
 * (keys, addresses, endpoints, relay URLs that peers wrote into their own records) becomes typed
 * values. The data plane never parses anything that came from the control plane.
 *
 * Everything a peer publishes about itself is untrusted: a field that does not parse costs only
 * that field (a bad endpoint is dropped, a bad disco key makes a plain WireGuard peer, a relay URL
 * that is not one of the network's relays is ignored), a bad WireGuard key costs only that peer,
 * and nothing costs the whole map. Each such problem is returned in `problems`.
 *
 * Relays this node may connect to come only from the owner's relay records and the network's
 * default relays; a peer's preferred relay is used as its home relay only when it is one of those.
 */
import type { CompiledFilter as AclFilter, CompiledMatch, PortRange as AclPortRange } from '../control/acl.js';
import type { MapPeer, NetworkMap } from '../control/netmap.js';
import type { DataPlanePeer } from '../engine/dataplane.js';
import { isWireGuardKeyBase64, type FilterRuleSpec, type FilterSpec } from '../engine/filter/index.js';
import { normalizeRelayUrl, type RelayConfig } from '../engine/magicsock/relay-set.js';
import { AddrEndpoint } from '../engine/wireguard/addr-endpoint.js';
import { parseIp } from '../util/ip.js';
import { containsPrefix, hostPrefix as prefixOfHost, makePrefix, parsePrefix, tryParsePrefix, type IpPrefix } from '../util/prefix.js';
import { subnetRouteProblem } from '../control/routes.js';
import { joinHostPort } from '../util/host-port.js';

export type { RelayConfig };

/** At most this many candidate endpoints of one peer are used (the rest are reported). */
export const MAX_PEER_ENDPOINTS = 32;

/** One peer of the data-plane config: the data plane's typed peer plus who it is, for logs. */
export interface PeerConfig extends DataPlanePeer {
  did: string;
  /** `publicKey` in base64, as logs and `status` show it. */
  publicKeyBase64: string;
}

export type MapProblemField =
  | 'peer'
  | 'did'
  | 'wireguardKey'
  | 'meshIP'
  | 'meshIP6'
  | 'discoKey'
  | 'endpoints'
  | 'localEndpoints'
  | 'preferredRelay'
  | 'relays'
  | 'defaultRelays'
  | 'routes'
  | 'exitNode';

/** A field of the map that could not be used, and what was done instead. */
export interface MapProblem {
  /** The peer's DID (or its key, or its index when neither is usable); null: not about a peer. */
  peer: string | null;
  field: MapProblemField;
  reason: string;
  /** Whether the whole peer was left out (else only the field). */
  peerSkipped: boolean;
}

export interface DataPlaneConfigFromMap {
  peers: PeerConfig[];
  relays: RelayConfig[];
  /** null: no policy record, allow everything. */
  filter: FilterSpec | null;
  problems: MapProblem[];
  /**
   * The exit node in use (0.0.0.0/0 is in its allowed IPs, and ::/0 when it carries IPv6:
   * `ipv6`), or null.
   */
  exitNode: { did: string; publicKeyBase64: string; ipv6: boolean } | null;
}

/** Options of configFromMap. */
export interface ConfigFromMapOptions {
  persistentKeepalive?: number;
  /** DID of the peer to use as exit node (only when the map says it is an approved one). */
  exitNode?: string | null;
  /**
   * Prefixes this host is itself on (its LANs) or routes itself: a peer's route equal to or
   * inside one of them is not taken, so the host's own networks never move into the tunnel.
   */
  localPrefixes?: readonly string[];
}

const HTTP_PROTOCOLS = new Set(['http:', 'https:']);

function describe(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : String(typeof v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * A relay URL this node could connect to, in the form the relay client uses (a missing path
 * becomes /derp); null unless it is an http(s) URL with a host.
 */
export function parseRelayUrl(s: unknown): string | null {
  if (typeof s !== 'string' || s.length > 2048) return null;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  if (!HTTP_PROTOCOLS.has(u.protocol) || u.hostname === '') return null;
  try {
    return normalizeRelayUrl(u.toString());
  } catch {
    return null;
  }
}

/** A 32-byte key in standard base64, or null. */
function parseKey(s: unknown): Uint8Array | null {
  if (!isWireGuardKeyBase64(s)) return null;
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** A bare address as a host prefix (/32 or /128), or null. */
function hostPrefix(s: unknown): IpPrefix | null {
  if (typeof s !== 'string') return null;
  const addr = parseIp(s);
  return addr === null ? null : prefixOfHost(addr);
}

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 65535;
}

/** Candidate endpoints of a peer as text: its public endpoints (by priority), then its local ones. */
export function peerEndpoints(p: MapPeer): string[] {
  const out: string[] = [];
  const pub: unknown = p.endpoints;
  const local: unknown = p.localEndpoints;
  for (const e of Array.isArray(pub) ? (pub as Partial<MapPeer['endpoints'][number]>[]) : []) {
    if (typeof e?.address === 'string' && typeof e.port === 'number') out.push(joinHostPort(e.address, e.port));
  }
  for (const l of Array.isArray(local) ? (local as unknown[]) : []) if (typeof l === 'string') out.push(l);
  return [...new Set(out)];
}

function side(m: CompiledMatch): { peers: string[] | '*'; cidrs: string[] } {
  return m.any ? { peers: '*', cidrs: [] } : { peers: m.peers, cidrs: m.cidrs };
}

/** Port ranges in the filter spec's text form: "22", "8000-9000". */
function portRanges(list: readonly AclPortRange[]): string[] {
  return list.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`));
}

/** The control plane's compiled ACL as the engine filter's spec. */
export function filterSpecFromAcl(f: AclFilter): FilterSpec | null {
  if (f.policyVersion === null) return null;
  const rules: FilterRuleSpec[] = f.rules.map((r) => {
    const src = side(r.src);
    const dst = side(r.dst);
    // A side that selected nothing (e.g. a group with no devices yet) stays empty: an empty
    // srcPeers with empty srcCidrs, or an empty dstCidrs, matches nothing.
    const rule: FilterRuleSpec = {
      action: r.action,
      srcPeers: src.peers,
      srcCidrs: src.cidrs,
      dstCidrs: r.dst.any ? '*' : dst.cidrs,
      proto: r.proto,
    };
    if (r.dstPorts) rule.dstPorts = portRanges(r.dstPorts);
    if (r.srcPorts) rule.srcPorts = portRanges(r.srcPorts);
    return rule;
  });
  return { defaultAction: f.defaultAction, rules };
}

/** The relays this node may connect to: the owner's relay records, then the network's defaults. */
function relaysFromMap(map: NetworkMap, problems: MapProblem[]): RelayConfig[] {
  const out = new Map<string, RelayConfig>();
  const records: unknown = map.relays;
  for (const r of Array.isArray(records) ? (records as unknown[]) : []) {
    const rec = (typeof r === 'object' && r !== null ? r : {}) as Partial<Record<keyof NetworkMap['relays'][number], unknown>>;
    if (rec.stunOnly === true) continue;
    const url = parseRelayUrl(rec.url);
    if (url === null) {
      problems.push({ peer: null, field: 'relays', reason: `relay URL ${describe(rec.url)} is not an http(s) URL with a host; relay ignored`, peerSkipped: false });
      continue;
    }
    if (out.has(url)) continue;
    const cfg: RelayConfig = { url };
    if (isPort(rec.stunPort)) cfg.stunPort = rec.stunPort;
    else if (rec.stunPort !== undefined && rec.stunPort !== null) {
      problems.push({ peer: null, field: 'relays', reason: `relay ${url}: STUN port ${describe(rec.stunPort)} is not a port; using the default`, peerSkipped: false });
    }
    if (typeof rec.region === 'string') cfg.region = rec.region;
    if (typeof rec.fingerprint === 'string' && /^[A-Za-z0-9_-]{43}$/.test(rec.fingerprint)) cfg.fingerprint = rec.fingerprint;
    else if (rec.fingerprint !== undefined && rec.fingerprint !== null) {
      problems.push({ peer: null, field: 'relays', reason: `relay ${url}: TLS fingerprint ${describe(rec.fingerprint)} is not base64url SHA-256; relay ignored`, peerSkipped: false });
      continue;
    }
    out.set(url, cfg);
  }
  const defaults: unknown = map.network?.defaultRelays;
  for (const u of Array.isArray(defaults) ? (defaults as unknown[]) : []) {
    const url = parseRelayUrl(u);
    if (url === null) {
      problems.push({ peer: null, field: 'defaultRelays', reason: `relay URL ${describe(u)} is not an http(s) URL with a host; relay ignored`, peerSkipped: false });
      continue;
    }
    if (!out.has(url)) out.set(url, { url });
  }
  return [...out.values()];
}

type UntrustedPeer = Partial<Record<keyof MapPeer, unknown>>;

/** The endpoints a peer published, parsed; each that does not parse is reported and dropped. */
function peerAddrEndpoints(p: UntrustedPeer, report: (field: MapProblemField, reason: string) => void): AddrEndpoint[] {
  const out = new Map<string, AddrEndpoint>();
  const add = (ep: AddrEndpoint, field: MapProblemField): void => {
    const key = ep.toString();
    if (out.has(key)) return;
    if (out.size >= MAX_PEER_ENDPOINTS) {
      report(field, `more than ${MAX_PEER_ENDPOINTS} endpoints; ${key} and later ones dropped`);
      return;
    }
    out.set(key, ep);
  };
  const pub: unknown = p.endpoints;
  if (pub !== undefined && !Array.isArray(pub)) report('endpoints', 'not a list; dropped');
  for (const e of Array.isArray(pub) ? (pub as unknown[]) : []) {
    const rec = (typeof e === 'object' && e !== null ? e : {}) as { address?: unknown; port?: unknown };
    const ip = typeof rec.address === 'string' ? parseIp(rec.address) : null;
    if (ip === null || !isPort(rec.port)) {
      report('endpoints', `endpoint ${describe(rec.address)} port ${describe(rec.port)} is not an IP address and port; dropped`);
      continue;
    }
    add(AddrEndpoint.fromIpPort(ip, rec.port), 'endpoints');
  }
  const local: unknown = p.localEndpoints;
  if (local !== undefined && !Array.isArray(local)) report('localEndpoints', 'not a list; dropped');
  for (const s of Array.isArray(local) ? (local as unknown[]) : []) {
    let ep: AddrEndpoint;
    try {
      if (typeof s !== 'string') throw new TypeError('not text');
      ep = AddrEndpoint.parse(s);
    } catch {
      report('localEndpoints', `endpoint ${describe(s)} is not IP:port; dropped`);
      continue;
    }
    add(ep, 'localEndpoints');
  }
  return [...out.values()];
}

/**
 * A peer's subnet routes as prefixes: each must be a valid subnet route (no host bits, not the
 * mesh's, not a default route), not one of this host's own networks, and not already taken by
 * an earlier peer (peers come sorted by DID: the first router of a prefix keeps it).
 */
function peerRoutes(
  p: UntrustedPeer,
  meshPrefixes: readonly string[],
  local: readonly IpPrefix[],
  claimed: Map<string, string>,
  did: string,
  report: (field: MapProblemField, reason: string) => void,
): IpPrefix[] {
  const raw: unknown = p.routes;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    report('routes', 'not a list; dropped');
    return [];
  }
  const out: IpPrefix[] = [];
  for (const r of raw as unknown[]) {
    const why = typeof r === 'string' ? subnetRouteProblem(r, meshPrefixes) : 'is not text';
    if (why !== null) {
      report('routes', `route ${describe(r)} ${why}; dropped`);
      continue;
    }
    const route = r as string;
    const prefix = parsePrefix(route, { hostBits: 'reject' }); // subnetRouteProblem has vetted it
    if (local.some((l) => containsPrefix(l, prefix))) {
      report('routes', `route ${route} is inside a network this host is on; not routed through the mesh`);
      continue;
    }
    const owner = claimed.get(route);
    if (owner !== undefined) {
      if (owner !== did) report('routes', `route ${route} is also routed by ${owner}, which keeps it; dropped`);
      continue;
    }
    claimed.set(route, did);
    out.push(prefix);
  }
  return out;
}

/**
 * The data-plane configuration of a network map. Never throws on what peers wrote into their
 * records: problems are listed in `problems` and cost only the field or the peer concerned.
 */
export function configFromMap(map: NetworkMap, opts: ConfigFromMapOptions = {}): DataPlaneConfigFromMap {
  const problems: MapProblem[] = [];
  const meshPrefixes = [map.network?.meshCIDR, map.network?.meshCIDR6].filter((x): x is string => typeof x === 'string');
  const local = (opts.localPrefixes ?? []).map((x) => tryParsePrefix(x, { hostBits: 'mask' })).filter((x): x is IpPrefix => x !== null);
  const claimed = new Map<string, string>();
  let exitNode: DataPlaneConfigFromMap['exitNode'] = null;
  const relays = relaysFromMap(map, problems);
  const relayUrls = new Set(relays.map((r) => r.url));
  const selfDid = map.self?.did;
  const peers: PeerConfig[] = [];
  const seen = new Set<string>();
  const list: unknown = map.peers;
  (Array.isArray(list) ? (list as unknown[]) : []).forEach((raw, i) => {
    const p = (typeof raw === 'object' && raw !== null ? raw : {}) as UntrustedPeer;
    const did = typeof p.did === 'string' ? p.did : null;
    if (did !== null && did === selfDid) return;
    const who = did ?? (typeof p.wireguardKey === 'string' ? p.wireguardKey : `peers[${i}]`);
    const skip = (field: MapProblemField, reason: string): void => {
      problems.push({ peer: who, field, reason, peerSkipped: true });
    };
    const report = (field: MapProblemField, reason: string): void => {
      problems.push({ peer: who, field, reason, peerSkipped: false });
    };
    if (did === null) return skip('did', 'peer has no DID; peer left out');
    const publicKey = parseKey(p.wireguardKey);
    if (publicKey === null) return skip('wireguardKey', `WireGuard key ${describe(p.wireguardKey)} is not a base64 32-byte key; peer left out`);
    const publicKeyBase64 = Buffer.from(publicKey).toString('base64');
    if (seen.has(publicKeyBase64)) return skip('wireguardKey', `WireGuard key ${publicKeyBase64} is listed twice; the later peer left out`);
    if (publicKeyBase64 === map.self?.wireguardKey) return skip('wireguardKey', 'peer has this node\'s own WireGuard key; peer left out');

    const allowedIps: IpPrefix[] = [];
    const v4 = hostPrefix(p.meshIP);
    if (v4 !== null) allowedIps.push(v4);
    else report('meshIP', `mesh IP ${describe(p.meshIP)} is not an IP address; dropped`);
    if (p.meshIP6 !== undefined && p.meshIP6 !== null && p.meshIP6 !== '') {
      const v6 = hostPrefix(p.meshIP6);
      if (v6 !== null) allowedIps.push(v6);
      else report('meshIP6', `mesh IPv6 ${describe(p.meshIP6)} is not an IP address; dropped`);
    }
    if (allowedIps.length === 0) return skip('meshIP', 'no usable mesh address; peer left out');
    allowedIps.push(...peerRoutes(p, meshPrefixes, local, claimed, did, report));
    if (opts.exitNode === did) {
      if (p.exitNode === true) {
        allowedIps.push(makePrefix(new Uint8Array(4), 0));
        if (p.exitNodeIPv6 === true) allowedIps.push(makePrefix(new Uint8Array(16), 0));
      }
      else report('exitNode', 'chosen as exit node but not an approved exit node (the owner approves it with `meshd route approve DID exit-node`); not used');
    }

    // Until a peer publishes its endpoint record it has no disco key; it is still a WireGuard
    // peer (handshakes from it are accepted), only path discovery waits.
    let discoKey: Uint8Array | null = null;
    if (p.discoKey !== undefined && p.discoKey !== null) {
      discoKey = parseKey(p.discoKey);
      if (discoKey === null) report('discoKey', `disco key ${describe(p.discoKey)} is not a base64 32-byte key; plain WireGuard peer`);
    }

    let homeRelay: string | null = null;
    if (p.preferredRelay !== undefined && p.preferredRelay !== null && p.preferredRelay !== '') {
      const url = parseRelayUrl(p.preferredRelay);
      if (url === null) report('preferredRelay', `preferred relay ${describe(p.preferredRelay)} is not an http(s) URL with a host; ignored`);
      else if (!relayUrls.has(url)) report('preferredRelay', `preferred relay ${url} is not one of the network's relays; ignored`);
      else homeRelay = url;
    }

    const pc: PeerConfig = {
      did,
      publicKey,
      publicKeyBase64,
      allowedIps,
      discoKey,
      endpoints: peerAddrEndpoints(p, report),
      homeRelay,
    };
    if (opts.persistentKeepalive) pc.persistentKeepalive = opts.persistentKeepalive;
    seen.add(publicKeyBase64);
    peers.push(pc);
    if (opts.exitNode === did && p.exitNode === true) exitNode = { did, publicKeyBase64, ipv6: p.exitNodeIPv6 === true };
  });
  return { peers, relays, filter: filterSpecFromAcl(map.filter), problems, exitNode };
}

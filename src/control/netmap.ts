/**
 * The network map: everything the engine needs, as one plain, serialisable object — network
 * settings, this node, its peers (keys, mesh IPs, endpoints, disco key, online), relays and the
 * compiled packet filter. `hash` covers every field but `hash` and `generatedAt`, so consumers
 * diff maps by comparing hashes.
 */
import { createHash } from 'node:crypto';
import { parseDidJwk } from '../identity/did-jwk.js';
import { wgKeyToBase64, x25519PublicFromEd25519 } from '../identity/keys.js';
import { DEFAULT_MESH_CIDR6 } from '../identity/mesh-address.js';
import { compileAcl, type AclNode, type CompiledFilter } from './acl.js';
import { activeNodeOf, activeNodes, currentNetwork, currentPolicy, currentRelays, nodeRecordsByDid, type ActiveNode, type RecordSet } from './model.js';
import type { Decoded } from './reader.js';
import type { Capability, EndpointSource, NatType } from './records.js';
import { routesInUse } from './routes.js';
import { compareText } from '../util/compare.js';

export const MAP_FORMAT_VERSION = 1;
/**
 * How often a device re-writes its endpoint record unchanged (a heartbeat). Every device reads
 * every heartbeat, so at N devices each receives N / 8 a minute: liveness comes from the data
 * plane first (handshakes, disco), and the records only need to say "still there" in minutes.
 */
export const ENDPOINT_HEARTBEAT_MS = 8 * 60_000;
/**
 * A peer is "online" by its records when its endpoint record was written this recently (two and
 * a half heartbeats); a recent handshake counts first, in the agent.
 */
export const ONLINE_WINDOW_MS = 20 * 60_000;
export const DEFAULT_LISTEN_PORT = 51820;

export interface MapEndpoint {
  address: string;
  port: number;
  priority: number;
  source: EndpointSource;
}

export interface MapPeer {
  did: string;
  /** WireGuard public key, base64. */
  wireguardKey: string;
  meshIP: string;
  meshIP6: string;
  /** The member (or the network owner) the device belongs to. */
  owner: string;
  hostname: string | null;
  os: string | null;
  capabilities: Capability[];
  /**
   * Subnet routes this node routes for the mesh: advertised by it and approved by the owner
   * (always set by buildNetworkMap; absent in maps cached by older versions).
   */
  routes?: string[];
  /** An exit node: advertised by it and approved by the owner (route 0.0.0.0/0). */
  exitNode?: boolean;
  /** An exit node that carries IPv6 too (it says it has an IPv6 uplink); false when not an exit node. */
  exitNodeIPv6?: boolean;
  /** Candidate public endpoints, highest priority first. */
  endpoints: MapEndpoint[];
  /** "ip:port" addresses on the device's own networks. */
  localEndpoints: string[];
  natType: NatType;
  /** Disco public key, base64; null until the device has published an endpoint record. */
  discoKey: string | null;
  preferredRelay: string | null;
  endpointUpdatedAt: string | null;
  /** Endpoint record written within the online window. */
  online: boolean;
  expiresAt: string | null;
}

export interface MapRelay {
  url: string;
  region: string;
  regionName: string | null;
  stunPort: number;
  stunOnly: boolean;
  latitude: number | null;
  longitude: number | null;
  /** TLS key pin of the relay (relay record `fingerprint`), or null: normal TLS verification. */
  fingerprint: string | null;
}

export interface MapNetworkSettings {
  name: string;
  meshCIDR: string;
  meshCIDR6: string;
  listenPort: number;
  dnsServers: string[];
  magicDNSSuffix: string | null;
  anchorEndpoint: string | null;
  defaultRelays: string[];
}

export interface NetworkMap {
  formatVersion: typeof MAP_FORMAT_VERSION;
  networkId: string;
  /** The network owner's DID. */
  anchor: string;
  epoch: number;
  network: MapNetworkSettings;
  /** This device (null when it is not an active node of the network). */
  self: MapPeer | null;
  /** Every other active node, sorted by DID. */
  peers: MapPeer[];
  relays: MapRelay[];
  filter: CompiledFilter;
  /** SHA-256 (hex) of the canonical JSON of every other field except generatedAt. */
  hash: string;
  generatedAt: string;
}

export interface BuildMapInput {
  set: RecordSet;
  networkId: string;
  anchor: string;
  selfDid: string;
  now: number;
  /** The WireGuard key of a DID (default: computed; callers that rebuild often pass a memo). */
  keyOf?: (did: string) => string;
}

export function wireguardKeyOf(did: string): string {
  return wgKeyToBase64(x25519PublicFromEd25519(parseDidJwk(did)));
}

/** Online by its records: the endpoint record's time (ms; NaN: none) lies within the window of now. */
export function isOnline(updated: number, now: number): boolean {
  return Number.isFinite(updated) && now - updated <= ONLINE_WINDOW_MS && updated - now <= ONLINE_WINDOW_MS;
}

function toPeer(n: ActiveNode, now: number, keyOf: (did: string) => string, meshPrefixes: readonly string[]): MapPeer {
  const d = n.record.data;
  const caps = n.info?.data.capabilities ?? [];
  const inUse = routesInUse(n.info?.data.routes, caps.includes('exit-node'), d.approvedRoutes, meshPrefixes);
  const ep = n.endpoint?.data;
  // the record's own (signed) time moves with heartbeats; the data's updatedAt with changes
  const updated = ep ? Math.max(Date.parse(ep.updatedAt), Date.parse(n.endpoint!.timestamp)) : NaN;
  return {
    did: d.did,
    wireguardKey: keyOf(d.did),
    meshIP: d.meshIP,
    meshIP6: d.meshIP6,
    owner: d.owner,
    hostname: n.info?.data.hostname ?? null,
    os: n.info?.data.os ?? null,
    capabilities: [...caps].sort(),
    routes: inUse.routes,
    exitNode: inUse.exitNode,
    exitNodeIPv6: inUse.exitNode && n.info?.data.exitNodeIPv6 === true,
    endpoints: (ep?.publicEndpoints ?? [])
      .map((e) => ({ address: e.address, port: e.port, priority: e.priority ?? 0, source: e.source }))
      .sort((a, b) => b.priority - a.priority || compareText(a.address, b.address) || a.port - b.port),
    localEndpoints: [...(ep?.localEndpoints ?? [])],
    natType: ep?.natType ?? 'unknown',
    discoKey: ep?.discoKey ?? null,
    preferredRelay: ep?.preferredRelay ?? null,
    endpointUpdatedAt: Number.isFinite(updated) ? new Date(updated).toISOString() : null,
    online: isOnline(updated, now),
    expiresAt: d.expiresAt ?? null,
  };
}

/** JSON with object keys sorted, for hashing. */
export function canonicalJson(v: unknown): string {
  // built by concatenation, without the intermediate arrays of map/filter/join: every device
  // hashes its whole map (100 peers: ~100 KB of JSON) on each change
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) s += (i > 0 ? ',' : '') + canonicalJson(v[i]);
    return s + ']';
  }
  const o = v as Record<string, unknown>;
  let s = '{';
  let first = true;
  for (const k of Object.keys(o).sort()) {
    const x = o[k];
    if (x === undefined) continue;
    s += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(x);
    first = false;
  }
  return s + '}';
}

/**
 * SHA-256 of the map's canonical JSON, leaving out `generatedAt` and what moves with time alone
 * — each peer's `online` and `endpointUpdatedAt`, which every heartbeat refreshes — so that a
 * heartbeat makes no new map for the data plane to apply or the cache to store.
 */
/** A peer without the fields that move with time alone (what the hash covers of it). */
function steadyPeer(p: MapPeer | null): Omit<MapPeer, 'online' | 'endpointUpdatedAt'> | null {
  if (p === null) return null;
  const { online: _o, endpointUpdatedAt: _u, ...rest } = p;
  return rest;
}

export function mapHash(m: Omit<NetworkMap, 'hash' | 'generatedAt'> & { hash?: string; generatedAt?: string }): string {
  const { hash: _h, generatedAt: _g, ...rest } = m;
  const body = { ...rest, self: steadyPeer(rest.self ?? null), peers: (rest.peers ?? []).map(steadyPeer) };
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** Build the map from records; undefined when the network record cannot be read. */
export function buildNetworkMap(input: BuildMapInput): NetworkMap | undefined {
  const { set, networkId, anchor, selfDid, now } = input;
  const net = currentNetwork(set, networkId, anchor);
  if (!net) return undefined;
  const n = net.data;
  const view = activeNodes(set, networkId, anchor, n.meshCIDR, now);
  const keyOf = input.keyOf ?? wireguardKeyOf;
  const meshPrefixes = [n.meshCIDR, n.meshCIDR6 ?? DEFAULT_MESH_CIDR6];
  const all = view.active.map((a) => toPeer(a, now, keyOf, meshPrefixes));
  const aclNodes: AclNode[] = all.map((p) => ({ did: p.did, owner: p.owner, wireguardKey: p.wireguardKey, meshIPs: [p.meshIP, p.meshIP6] }));
  const policy = currentPolicy(set, networkId, anchor);
  const relays: MapRelay[] = currentRelays(set, networkId, anchor).map((r) => ({
    url: r.data.url,
    region: r.data.region,
    regionName: r.data.regionName ?? null,
    stunPort: r.data.stunPort ?? 3478,
    stunOnly: r.data.stunOnly ?? false,
    latitude: r.data.latitude ?? null,
    longitude: r.data.longitude ?? null,
    fingerprint: r.data.fingerprint ?? null,
  }));
  const body: Omit<NetworkMap, 'hash' | 'generatedAt'> = {
    formatVersion: MAP_FORMAT_VERSION,
    networkId,
    anchor,
    epoch: n.epoch,
    network: {
      name: n.name,
      meshCIDR: n.meshCIDR,
      meshCIDR6: n.meshCIDR6 ?? DEFAULT_MESH_CIDR6,
      listenPort: n.listenPort ?? DEFAULT_LISTEN_PORT,
      dnsServers: n.dnsServers ?? [],
      magicDNSSuffix: n.magicDNSSuffix ?? null,
      anchorEndpoint: n.anchorEndpoint ?? null,
      defaultRelays: n.defaultRelays ?? [],
    },
    self: all.find((p) => p.did === selfDid) ?? null,
    peers: all.filter((p) => p.did !== selfDid),
    relays,
    filter: compileAcl(policy?.data, aclNodes),
  };
  return { ...body, hash: mapHash(body), generatedAt: new Date(now).toISOString() };
}

/**
 * Finding a node's records without a pass over every record: the caller's indexes (a session
 * keeps them as records come: record-slots.ts), or ones made from the set.
 */
export interface NodeLookup {
  /** The node record nodeRecordsByDid holds with this contextId (the newest of its DID). */
  nodeByContext(contextId: string): Decoded<'node'> | undefined;
  /** As model.ts activeNodeOf. */
  activeNodeOf(record: Decoded<'node'>): ActiveNode;
}

function lookupOf(set: RecordSet, networkId: string, anchor: string): NodeLookup {
  const byContext = new Map<string, Decoded<'node'>>();
  for (const r of nodeRecordsByDid(set, networkId, anchor).values()) byContext.set(r.contextId, r);
  return { nodeByContext: (c) => byContext.get(c), activeNodeOf: (r) => activeNodeOf(set, r) };
}

/**
 * The map again after records of the nodes with these context ids changed only in what moves
 * with time (an endpoint heartbeat: same bytes, newer record time): those peers are made anew
 * from the records and put in place, with no rebuild and no new hash. Undefined when a node is
 * not in the map or anything its hash covers changed: then the whole map must be rebuilt.
 */
export function touchPeers(map: NetworkMap, set: RecordSet, nodeContextIds: ReadonlySet<string>, now: number, keyOf: (did: string) => string = wireguardKeyOf, lookup?: NodeLookup): NetworkMap | undefined {
  return touchPeersWith(map, set, nodeContextIds, now, keyOf, lookup)?.map;
}

/** touchPeers, also handing back the peers it made anew (what moves with time changed only for them). */
export function touchPeersWith(
  map: NetworkMap,
  set: RecordSet,
  nodeContextIds: ReadonlySet<string>,
  now: number,
  keyOf: (did: string) => string = wireguardKeyOf,
  lookup: NodeLookup = lookupOf(set, map.networkId, map.anchor),
): { map: NetworkMap; touched: MapPeer[] } | undefined {
  const meshPrefixes = [map.network.meshCIDR, map.network.meshCIDR6];
  let self = map.self;
  let peers: MapPeer[] | undefined;
  const touched: MapPeer[] = [];
  for (const context of nodeContextIds) {
    const record = lookup.nodeByContext(context);
    if (record === undefined) return undefined;
    const did = record.data.did;
    const i = self?.did === did ? -1 : indexByDid(map.peers, did);
    const old = i === -1 ? self : i === undefined ? undefined : map.peers[i];
    if (old === null || old === undefined || i === undefined) return undefined;
    const peer = toPeer(lookup.activeNodeOf(record), now, keyOf, meshPrefixes);
    if (!sameSteadyPeer(peer, old)) return undefined;
    touched.push(peer);
    if (i === -1) self = peer;
    else (peers ??= [...map.peers])[i] = peer;
  }
  return { map: { ...map, self, peers: peers ?? map.peers, generatedAt: new Date(now).toISOString() }, touched };
}

/** What moves with time alone in a peer (left out of the hash and of sameSteadyPeer). */
const TIME_FIELDS: ReadonlySet<string> = new Set(['online', 'endpointUpdatedAt']);

/**
 * canonicalJson(steadyPeer(a)) === canonicalJson(steadyPeer(b)), without building either
 * string: a heartbeat compares its peer's old and new entries on every event.
 */
export function sameSteadyPeer(a: MapPeer, b: MapPeer): boolean {
  return sameJson(a, b, TIME_FIELDS);
}

/** Equal as canonicalJson sees values (members holding undefined are absent), minus `skip` at the top. */
function sameJson(a: unknown, b: unknown, skip?: ReadonlySet<string>): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return canonicalJson(a) === canonicalJson(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k of Object.keys(x)) {
    if (x[k] === undefined || skip?.has(k)) continue;
    n++;
    const yv = y[k];
    if (yv === undefined || !sameJson(x[k], yv)) return false;
  }
  for (const k of Object.keys(y)) if (y[k] !== undefined && !skip?.has(k)) n--;
  return n === 0;
}

/** Index of the peer with this DID in peers sorted by DID (compareText, as built), or undefined. */
function indexByDid(peers: readonly MapPeer[], did: string): number | undefined {
  let lo = 0;
  let hi = peers.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = compareText(peers[mid]!.did, did);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  // a map read from an older cache may be ordered otherwise
  const k = peers.findIndex((p) => p.did === did);
  return k === -1 ? undefined : k;
}

/** Light structural check of a map read back from disk (our own cache file). */
export function isNetworkMap(v: unknown): v is NetworkMap {
  const m = v as Partial<NetworkMap> | null;
  return (
    typeof m === 'object' && m !== null && m.formatVersion === MAP_FORMAT_VERSION && typeof m.networkId === 'string' &&
    typeof m.hash === 'string' && Array.isArray(m.peers) && typeof m.network === 'object' && typeof m.filter === 'object' &&
    mapHash(m as NetworkMap) === m.hash
  );
}

/**
 * Finding a peer the way a user names it — host name, mesh IP (v4 or v6) or DID — in a network
 * map, telling why one is not there (never known, or removed / expired by the owner), and what
 * the ACL policy lets this device send it. Used by `meshd ping`, `meshd ip PEER` and `whois`.
 */
import { MeshdError } from '../errors.js';
import { filterDecision, type CompiledFilter } from '../control/acl.js';
import { canonicalIp } from '../control/ip.js';
import type { MapPeer, NetworkMap } from '../control/netmap.js';
import type { NodeRecord } from '../control/records.js';
import { canonicalDid } from '../identity/did-jwk.js';

/** Same DID, however the JWK members were ordered. */
function sameDid(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return canonicalDid(a) === canonicalDid(b);
  } catch {
    return false;
  }
}

function sameIp(a: string, b: string): boolean {
  const x = canonicalIp(a);
  return x !== null && x === canonicalIp(b);
}

/** Does `query` name this peer (DID, mesh IP, or host name — case-insensitive)? */
export function peerMatches(p: Pick<MapPeer, 'did' | 'meshIP' | 'meshIP6' | 'hostname'>, query: string): boolean {
  const q = query.trim();
  if (q.startsWith('did:')) return sameDid(p.did, q);
  if (canonicalIp(q) !== null) return sameIp(p.meshIP, q) || sameIp(p.meshIP6, q);
  return p.hostname !== null && p.hostname.toLowerCase() === q.toLowerCase();
}

/** This device or one of its peers, by name / mesh IP / DID; undefined when none matches. */
export function findPeer(map: NetworkMap, query: string): { peer: MapPeer; self: boolean } | undefined {
  if (query.trim() === '') throw new MeshdError('E_USAGE', 'name a peer: its host name, mesh IP or DID');
  if (map.self && peerMatches(map.self, query)) return { peer: map.self, self: true };
  const hits = map.peers.filter((p) => peerMatches(p, query));
  if (hits.length > 1) {
    throw new MeshdError('E_USAGE', `"${query}" names ${hits.length} peers (${hits.map((p) => p.meshIP).join(', ')})`, { hint: 'name it by mesh IP or DID instead' });
  }
  return hits[0] ? { peer: hits[0], self: false } : undefined;
}

export type Departed = { node: { did: string; meshIP: string; meshIP6: string; expiresAt?: string | null | undefined }; why: 'removed' | 'expired' | 'left'; at?: string };

/** A node record the owner revoked, or whose expiry passed: why a peer is no longer in the map. */
export function departedNode(nodes: readonly NodeRecord[], query: string, now: number): Departed | undefined {
  for (const n of nodes) {
    if (!peerMatches({ ...n, hostname: null }, query)) continue;
    if (n.status === 'revoked') return { node: n, why: 'removed' };
    if (n.expiresAt !== undefined && Date.parse(n.expiresAt) <= now) return { node: n, why: 'expired' };
  }
  return undefined;
}

/** How many peers that left the map are remembered (the oldest are forgotten first). */
const MAX_DEPARTED = 1024;

/**
 * Peers that were in a network map and are not in the next one: removed, expired — a device
 * that cannot read the owner's revocation still knows the peer left, and when.
 */
export class DepartedPeers {
  private readonly gone = new Map<string, { peer: Departed['node']; at: string }>();

  update(prev: readonly MapPeer[] | undefined, next: readonly MapPeer[], now = Date.now()): void {
    const present = new Set(next.map((p) => p.did));
    for (const did of present) this.gone.delete(did);
    for (const p of prev ?? []) {
      if (present.has(p.did)) continue;
      this.gone.delete(p.did);
      this.gone.set(p.did, { peer: { did: p.did, meshIP: p.meshIP, meshIP6: p.meshIP6, expiresAt: p.expiresAt }, at: new Date(now).toISOString() });
      if (this.gone.size > MAX_DEPARTED) this.gone.delete(this.gone.keys().next().value!);
    }
  }

  find(query: string): Departed | undefined {
    for (const g of [...this.gone.values()].reverse()) {
      if (peerMatches({ ...g.peer, hostname: null }, query)) return { node: g.peer, why: 'left', at: g.at };
    }
    return undefined;
  }
}

/** The error for a peer that is not in the map, naming why when the records say. */
export function unknownPeerError(query: string, departed: Departed | undefined): MeshdError {
  if (departed?.why === 'removed') {
    return new MeshdError('E_PEER_REMOVED', `${departed.node.meshIP} (${departed.node.did.slice(0, 24)}…) was removed from the network by its owner`, {
      hint: 'only the owner can add it again: `meshd invite` or `meshd peer add DID`',
    });
  }
  if (departed?.why === 'expired') {
    return new MeshdError('E_PEER_REMOVED', `${departed.node.meshIP} (${departed.node.did.slice(0, 24)}…) expired at ${departed.node.expiresAt ?? '?'}`, {
      hint: 'the owner can add it again with `meshd peer add DID`',
    });
  }
  if (departed?.why === 'left') {
    return new MeshdError('E_PEER_REMOVED', `${departed.node.meshIP} (${departed.node.did.slice(0, 24)}…) left the network at ${departed.at ?? '?'}: the owner removed it or its time ran out`, {
      hint: 'only the owner can add it again: `meshd invite` or `meshd peer add DID`',
    });
  }
  return new MeshdError('E_PEER_UNKNOWN', `no peer "${query}" in this network`, { hint: '`meshd status` lists the peers by name, mesh IP and DID' });
}

/**
 * What the policy lets this device send to a peer: 'all' (nothing of it is dropped), 'some'
 * (some protocols or ports), or 'none'. The peer enforces the same policy on what it receives.
 */
export function aclReach(filter: CompiledFilter, self: Pick<MapPeer, 'wireguardKey' | 'meshIP'>, peer: Pick<MapPeer, 'wireguardKey' | 'meshIP'>): 'all' | 'some' | 'none' {
  const probe = (proto: 'tcp' | 'udp' | 'icmp', port?: number) =>
    filterDecision(filter, { srcKey: self.wireguardKey, srcIP: self.meshIP, dstKey: peer.wireguardKey, dstIP: peer.meshIP, proto, ...(port !== undefined ? { srcPort: port, dstPort: port } : {}) });
  // Accepted ports of any rule that names this pair, plus a few ordinary ones.
  const ports = new Set<number>([22, 80, 443, 53, 1024, 65535]);
  for (const r of filter.rules) for (const pr of [...(r.dstPorts ?? []), ...(r.srcPorts ?? [])]) ports.add(pr.first).add(pr.last);
  let accepted = 0;
  let total = 0;
  for (const proto of ['tcp', 'udp'] as const) {
    for (const port of ports) {
      total++;
      if (probe(proto, port) === 'accept') accepted++;
    }
  }
  total++;
  if (probe('icmp') === 'accept') accepted++;
  return accepted === 0 ? 'none' : accepted === total ? 'all' : 'some';
}

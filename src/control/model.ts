/**
 * The meaning of a set of decoded records: which network record is current, which nodes and
 * members are active, each node's newest nodeInfo and endpoint, the policy in force, the
 * relays. Authorship is checked here as well as by the server: the owner's record kinds must
 * be the owner's, a device's records must be that device's.
 */
import type { Decoded } from './reader.js';
import type { RecordKind } from './protocol.js';
import type { NodeRecord } from './records.js';
import { parseIp } from '../util/ip.js';
import { containsAddress, tryParsePrefix } from '../util/prefix.js';
import { compareText } from '../util/compare.js';

export type RecordSet = { [K in RecordKind]: Decoded<K>[] };

export function emptyRecordSet(): RecordSet {
  return { network: [], node: [], member: [], nodeInfo: [], endpoint: [], aclPolicy: [], relay: [], relayProposal: [], nodeRequest: [], keyDelivery: [], invite: [], joinRequest: [] };
}

function newest<T extends { timestamp: string }>(xs: T[]): T | undefined {
  let best: T | undefined;
  for (const x of xs) if (!best || x.timestamp > best.timestamp) best = x;
  return best;
}

/**
 * The owner's network record with the highest epoch. A version counts only when it is encrypted
 * under the key of the epoch it names (a reader that cannot map its key skips it).
 */
export function currentNetwork(set: RecordSet, networkId: string, anchor: string): Decoded<'network'> | undefined {
  let best: Decoded<'network'> | undefined;
  for (const r of set.network) {
    if (r.recordId !== networkId || r.author !== anchor || r.epoch !== r.data.epoch) continue;
    if (!best || r.data.epoch > best.data.epoch || (r.data.epoch === best.data.epoch && r.timestamp > best.timestamp)) best = r;
  }
  return best;
}

/**
 * The owner's records under this network about one DID each (addressed to that DID): the
 * newest per DID, sorted by DID.
 */
function newestPerDid<K extends 'node' | 'member'>(records: Decoded<K>[], networkId: string, anchor: string): Decoded<K>[] {
  return [...newestByDid(records, networkId, anchor).values()].sort((a, b) => compareText(a.data.did, b.data.did));
}

/** As newestPerDid, by DID and unsorted (one pass: for a caller that looks up a few DIDs). */
function newestByDid<K extends 'node' | 'member'>(records: Decoded<K>[], networkId: string, anchor: string): Map<string, Decoded<K>> {
  const byDid = new Map<string, Decoded<K>>();
  for (const r of records) {
    if (r.author !== anchor || r.parentContextId !== networkId || r.recipient !== r.data.did) continue;
    const prev = byDid.get(r.data.did);
    if (!prev || r.timestamp > prev.timestamp) byDid.set(r.data.did, r);
  }
  return byDid;
}

/** Node records written by the owner under this network, newest state per device DID. */
export function nodeRecords(set: RecordSet, networkId: string, anchor: string): Decoded<'node'>[] {
  return newestPerDid(set.node, networkId, anchor);
}

/** The records of nodeRecords by device DID, unsorted (no sort of every DID for a lookup). */
export function nodeRecordsByDid(set: RecordSet, networkId: string, anchor: string): Map<string, Decoded<'node'>> {
  return newestByDid(set.node, networkId, anchor);
}

export function isNodeActive(n: NodeRecord, now: number): boolean {
  if (n.status !== 'active') return false;
  return n.expiresAt === undefined || Date.parse(n.expiresAt) > now;
}

export function memberRecords(set: RecordSet, networkId: string, anchor: string): Decoded<'member'>[] {
  return newestPerDid(set.member, networkId, anchor);
}

export interface ActiveNode {
  record: Decoded<'node'>;
  info: Decoded<'nodeInfo'> | undefined;
  endpoint: Decoded<'endpoint'> | undefined;
}

export interface NodeView {
  active: ActiveNode[];
  /** Node records skipped for an address outside the CIDR or taken by an earlier node. */
  conflicts: { did: string; reason: string }[];
}

/**
 * Active nodes with their newest nodeInfo and endpoint (written by the device itself, under its
 * own node record). Addresses must lie in the network's CIDR and be unique: on a clash the node
 * added first keeps the address and the other is left out.
 */
export function activeNodes(set: RecordSet, networkId: string, anchor: string, meshCIDR: string | undefined, now: number): NodeView {
  const cidr = meshCIDR ? tryParsePrefix(meshCIDR, { hostBits: 'reject' }) : null;
  const conflicts: NodeView['conflicts'] = [];
  const candidates = nodeRecords(set, networkId, anchor)
    .filter((r) => isNodeActive(r.data, now))
    .sort((a, b) => compareText(a.data.addedAt, b.data.addedAt) || compareText(a.data.did, b.data.did));
  const used = new Set<string>();
  const active: ActiveNode[] = [];
  // each node's own records, found in one pass (not one scan of every record per node)
  const infos = newestByParent(set.nodeInfo);
  const endpoints = newestByParent(set.endpoint);
  for (const record of candidates) {
    const ip = parseIp(record.data.meshIP);
    if (cidr && (!ip || !containsAddress(cidr, ip))) {
      conflicts.push({ did: record.data.did, reason: `mesh IP ${record.data.meshIP} is outside ${meshCIDR}` });
      continue;
    }
    if (used.has(record.data.meshIP) || used.has(record.data.meshIP6)) {
      conflicts.push({ did: record.data.did, reason: `mesh IP ${record.data.meshIP} is already in use` });
      continue;
    }
    used.add(record.data.meshIP);
    used.add(record.data.meshIP6);
    const key = ownKey(record.contextId, record.data.did);
    active.push({ record, info: infos.get(key), endpoint: endpoints.get(key) });
  }
  active.sort((a, b) => compareText(a.record.data.did, b.record.data.did));
  return { active, conflicts };
}

/**
 * One node with its newest nodeInfo and endpoint, as activeNodes pairs them (a scan of those two
 * kinds, for a caller that needs one node and not the whole view).
 */
export function activeNodeOf(set: RecordSet, record: Decoded<'node'>): ActiveNode {
  const mine = <K extends 'nodeInfo' | 'endpoint'>(xs: Decoded<K>[]) => newest(xs.filter((x) => x.parentContextId === record.contextId && x.author === record.data.did));
  return { record, info: mine(set.nodeInfo), endpoint: mine(set.endpoint) };
}

/** Records a device writes under its own node record count only from that device. */
function ownKey(parentContextId: string, author: string): string {
  return `${parentContextId}\n${author}`;
}

/** The newest record per (parent context, author). */
function newestByParent<K extends 'nodeInfo' | 'endpoint'>(xs: Decoded<K>[]): Map<string, Decoded<K>> {
  const out = new Map<string, Decoded<K>>();
  for (const x of xs) {
    const key = ownKey(x.parentContextId, x.author);
    const prev = out.get(key);
    if (!prev || x.timestamp > prev.timestamp) out.set(key, x);
  }
  return out;
}

/** The policy in force: the owner's aclPolicy with the highest version (newest on a tie). */
export function currentPolicy(set: RecordSet, networkId: string, anchor: string): Decoded<'aclPolicy'> | undefined {
  let best: Decoded<'aclPolicy'> | undefined;
  for (const r of set.aclPolicy) {
    if (r.author !== anchor || r.parentContextId !== networkId) continue;
    if (!best || r.data.version > best.data.version || (r.data.version === best.data.version && r.timestamp > best.timestamp)) best = r;
  }
  return best;
}

/** Relays the owner wrote (proposals by devices and members count only once the owner adopts them). */
export function currentRelays(set: RecordSet, networkId: string, anchor: string): Decoded<'relay'>[] {
  return set.relay
    .filter((r) => r.parentContextId === networkId && r.author === anchor)
    .sort((a, b) => compareText(a.data.region, b.data.region) || compareText(a.data.url, b.data.url));
}

/** Pending device requests: nodeRequests from active members for devices not yet active. */
export function pendingRequests(set: RecordSet, networkId: string, anchor: string, now: number): Decoded<'nodeRequest'>[] {
  const members = new Map(memberRecords(set, networkId, anchor).map((m) => [m.contextId, m]));
  const nodes = new Map(nodeRecords(set, networkId, anchor).map((n) => [n.data.did, n]));
  return set.nodeRequest.filter((r) => {
    const m = members.get(r.parentContextId);
    if (!m || m.data.status !== 'active' || r.author !== m.data.did) return false;
    const n = nodes.get(r.data.did);
    return !n || !isNodeActive(n.data, now);
  });
}

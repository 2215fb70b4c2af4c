/**
 * The records a device writes about itself (nodeInfo, endpoint), under its own node record,
 * encrypted to the current network key and itself. Used by `network create/join`, the control
 * client (endpoint changes, heartbeat, re-encryption after an epoch rotation) and tests.
 */
import { hostname as osHostname, platform } from 'node:os';
import { MeshdError } from '../errors.js';
import { MESHD_VERSION } from '../version.js';
import type { Decoded } from './reader.js';
import type { EndpointRecord, NodeInfoRecord, Os } from './records.js';
import type { NetworkSession } from './session.js';
import { nodeRecords } from './model.js';

/** This machine's nodeInfo, with a host name made valid for the record. */
export function localNodeInfo(overrides: Partial<NodeInfoRecord> = {}): NodeInfoRecord {
  const os: Os = (['linux', 'darwin', 'freebsd', 'android'] as string[]).includes(platform())
    ? (platform() as Os)
    : platform() === 'win32'
      ? 'windows'
      : 'linux';
  const host = osHostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, 253) || 'meshd-node';
  return { hostname: host, os, version: MESHD_VERSION, ...overrides };
}

/** This device's node record in the loaded set (must be loaded: 'node'). */
export function myNodeRecord(s: NetworkSession): Decoded<'node'> {
  const n = nodeRecords(s.set, s.joined.networkId, s.joined.anchor).find((r) => r.data.did === s.me);
  if (!n) {
    throw new MeshdError('E_NO_NETWORK', `this device has no node record in network ${s.joined.networkId}`, {
      hint: `ask the owner to run \`meshd peer add ${s.me}\``,
    });
  }
  if (n.data.status !== 'active') throw new MeshdError('E_NO_NETWORK', 'this device was removed from the network');
  return n;
}

/** This device's own record in its node's slot (whatever its epoch), or undefined. */
function mine<K extends 'nodeInfo' | 'endpoint'>(s: NetworkSession, kind: K, node: Decoded<'node'>): Decoded<K> | undefined {
  const r = s.nodeRecordOf(kind, node.contextId);
  return r && r.author === s.me ? r : undefined;
}

async function publish<K extends 'nodeInfo' | 'endpoint'>(s: NetworkSession, kind: K, data: K extends 'nodeInfo' ? NodeInfoRecord : EndpointRecord): Promise<void> {
  const node = myNodeRecord(s);
  const recipients = s.recipients(s.network().data.epoch);
  const existing = mine(s, kind, node);
  const typed = data as Decoded<K>['data'];
  if (existing) await s.update(existing, typed, recipients);
  else await s.writeNew(kind, typed, { parentContextId: node.contextId, recipients });
}

/** Create or update this device's nodeInfo. Needs 'network', 'node', 'nodeInfo' loaded. */
export function publishNodeInfo(s: NetworkSession, info: NodeInfoRecord): Promise<void> {
  return publish(s, 'nodeInfo', info);
}

/** Create or update this device's endpoint record. Needs 'network', 'node', 'endpoint' loaded. */
export function publishEndpoint(s: NetworkSession, ep: EndpointRecord): Promise<void> {
  return publish(s, 'endpoint', ep);
}

/**
 * Re-write the same endpoint bytes as a newer version (a heartbeat readers take without reading
 * data). False when there is nothing to re-write under the current epoch: publish instead.
 */
export async function touchEndpoint(s: NetworkSession): Promise<boolean> {
  const node = myNodeRecord(s);
  const rec = mine(s, 'endpoint', node);
  if (!rec || rec.epoch !== s.network().data.epoch) return false;
  return s.touch(rec);
}

/** This device's own nodeInfo/endpoint that are under an older epoch than the current one. */
function behind(s: NetworkSession, node: Decoded<'node'> = myNodeRecord(s)): Decoded<'nodeInfo' | 'endpoint'>[] {
  const net = s.network();
  const epoch = net.data.epoch;
  const out: Decoded<'nodeInfo' | 'endpoint'>[] = [];
  for (const kind of ['nodeInfo', 'endpoint'] as const) {
    const rec = mine(s, kind, node);
    if (rec && (rec.epoch === undefined || rec.epoch < epoch)) out.push(rec);
  }
  return out;
}

/**
 * Is any of this device's own records still under an older epoch (a rotation it has not followed
 * yet)? `node`: this device's node record, when the caller has it (every refresh asks).
 */
export function ownRecordsBehind(s: NetworkSession, node?: Decoded<'node'>): boolean {
  return behind(s, node).length > 0;
}

/**
 * Re-write this device's own nodeInfo/endpoint under the current epoch when they are under an
 * older one. Never downwards: the current epoch only goes up.
 */
export async function reencryptOwnRecords(s: NetworkSession): Promise<number> {
  const epoch = s.network().data.epoch;
  if (!s.acc.keyring.hasEpoch(epoch)) return 0;
  const recs = behind(s);
  for (const rec of recs) await s.update(rec, rec.data, s.recipients(epoch));
  return recs.length;
}

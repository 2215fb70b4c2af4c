/** `status` from the records (when no daemon runs): identity, network, peers, skipped records. */
import { wgKeyToBase64 } from '../identity/keys.js';
import { DwnError } from '../errors.js';
import { joinHostPort } from '../util/host-port.js';
import { readCachedMap, readJoinedNetwork, type JoinedNetwork } from './local-state.js';
import type { NetworkMap } from './netmap.js';
import { peerListing, type PeerListing } from './peer-ops.js';
import { newSkipLog, type SkipCounters } from './reader.js';
import { NetworkSession, networkDir, type ControlContext } from './session.js';

export interface RecordsStatus {
  identity: { profile: string; did: string; wireguardPublicKey: string };
  network: null | {
    networkId: string;
    name: string;
    anchor: string;
    endpoint: string;
    roles: string[];
    epoch: number;
    meshCIDR: string;
  };
  peers: PeerListing['peers'];
  pending: PeerListing['pending'];
  skipped: SkipCounters;
  /** 'cache': the DWN could not be reached; this is the last network map this device applied. */
  source: 'records' | 'cache';
  warning?: string;
}

export async function recordsStatus(ctx: ControlContext): Promise<RecordsStatus> {
  const p = ctx.profile;
  const identity = { profile: p.name, did: p.did, wireguardPublicKey: wgKeyToBase64(p.keys.xPublic) };
  const joined = readJoinedNetwork(p.dir);
  const none = newSkipLog().counters;
  if (!joined) return { identity, network: null, peers: [], pending: [], skipped: none, source: 'records' };
  try {
    return await statusFromRecords(ctx, joined, identity);
  } catch (e) {
    const cached = unreachable(e) ? readCachedMap(p.dir, joined.networkId) : undefined;
    if (!cached) throw e;
    return fromCachedMap(identity, joined, cached, none, (e as Error).message);
  }
}

async function statusFromRecords(ctx: ControlContext, joined: JoinedNetwork, identity: RecordsStatus['identity']): Promise<RecordsStatus> {
  const s = await NetworkSession.open(ctx, { joined });
  try {
    await s.load(s.role === 'owner' ? ['network', 'node', 'nodeInfo', 'endpoint', 'member', 'nodeRequest'] : ['keyDelivery', 'network', 'node', 'nodeInfo', 'endpoint']);
    const net = s.network();
    const listing = peerListing(s, Date.now());
    return {
      identity,
      network: {
        networkId: joined.networkId,
        name: net.data.name,
        anchor: joined.anchor,
        endpoint: joined.endpoint,
        roles: joined.roles,
        epoch: net.data.epoch,
        meshCIDR: net.data.meshCIDR,
      },
      peers: listing.peers,
      pending: listing.pending,
      skipped: { ...s.skips.counters },
      source: 'records',
    };
  } finally {
    await s.close();
  }
}

/**
 * `peer list` with the DWN unreachable: the peers of the last network map this device applied,
 * with a warning saying so; the original error when there is no such map.
 */
export function cachedPeerListing(ctx: ControlContext, e: unknown): PeerListing & { warning: string } {
  const joined = readJoinedNetwork(networkDir(ctx));
  const cached = joined && unreachable(e) ? readCachedMap(networkDir(ctx), joined.networkId) : undefined;
  if (!joined || !cached) throw e;
  const st = fromCachedMap({ profile: ctx.profile.name, did: ctx.profile.did, wireguardPublicKey: wgKeyToBase64(ctx.profile.keys.xPublic) }, joined, cached, newSkipLog().counters, (e as Error).message);
  return { networkId: joined.networkId, peers: st.peers, members: [], pending: [], warning: st.warning! };
}

/**
 * `acl show` with the DWN unreachable: the packet filter of the last network map this device
 * applied (the policy's text itself is only on the DWN), with a warning saying so; the original
 * error when there is no such map.
 */
export function cachedAcl(ctx: ControlContext, e: unknown): { policy: null; compiled: NetworkMap['filter']; source: 'cache'; warning: string } {
  const joined = readJoinedNetwork(networkDir(ctx));
  const cached = joined && unreachable(e) ? readCachedMap(networkDir(ctx), joined.networkId) : undefined;
  if (!joined || !cached) throw e;
  return { policy: null, compiled: cached.filter, source: 'cache', warning: `${(e as Error).message}; showing the packet filter cached at ${cached.generatedAt}` };
}

function unreachable(e: unknown): boolean {
  return e instanceof DwnError && (e.code === 'E_DWN_UNREACHABLE' || e.code === 'E_DWN_TIMEOUT');
}

/** The status a device can still give with its DWN unreachable: its last network map. */
function fromCachedMap(identity: RecordsStatus['identity'], joined: JoinedNetwork, map: NetworkMap, skipped: SkipCounters, why: string): RecordsStatus {
  const rows = [...(map.self ? [map.self] : []), ...map.peers].map((n) => ({
    did: n.did,
    self: n.did === map.self?.did,
    meshIP: n.meshIP,
    meshIP6: n.meshIP6,
    owner: n.owner,
    hostname: n.hostname,
    os: n.os,
    online: n.online,
    endpoints: n.endpoints.map((e) => joinHostPort(e.address, e.port)),
    endpointUpdatedAt: n.endpointUpdatedAt,
    path: null,
    lastHandshake: null,
    rxBytes: null,
    txBytes: null,
  }));
  return {
    identity,
    network: { networkId: map.networkId, name: map.network.name, anchor: map.anchor, endpoint: joined.endpoint, roles: joined.roles, epoch: map.epoch, meshCIDR: map.network.meshCIDR },
    peers: rows,
    pending: [],
    skipped,
    source: 'cache',
    warning: `${why}; showing the network map cached at ${map.generatedAt}`,
  };
}

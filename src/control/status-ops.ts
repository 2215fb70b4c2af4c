/** `status` from the records (when no daemon runs): identity, network, peers, skipped records. */
import { wgKeyToBase64 } from '../identity/keys.js';
import { readJoinedNetwork } from './local-state.js';
import { peerListing, type PeerListing } from './peer-ops.js';
import type { SkipCounters } from './reader.js';
import { NetworkSession, type ControlContext } from './session.js';

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
  source: 'records';
}

export async function recordsStatus(ctx: ControlContext): Promise<RecordsStatus> {
  const p = ctx.profile;
  const identity = { profile: p.name, did: p.did, wireguardPublicKey: wgKeyToBase64(p.keys.xPublic) };
  const joined = readJoinedNetwork(p.dir);
  const none = { invalid: 0, decryptFailed: 0, unknownEpoch: 0, notForMe: 0, badSignature: 0, wrongAuthor: 0 };
  if (!joined) return { identity, network: null, peers: [], pending: [], skipped: none, source: 'records' };
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

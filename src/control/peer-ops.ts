/**
 * `peer add`, `peer approve`, `peer remove`, `peer list` as functions. Adding and approving
 * deliver the current network key; removing revokes, rotates the key, and deletes what the DWN
 * held for the removed device (its node record with everything under it, its key delivery).
 */
import { inParallel } from '../util/parallel.js';
import { canonicalDid, parseDidJwk } from '../identity/did-jwk.js';
import { x25519PublicFromEd25519 } from '../identity/keys.js';
import { DidError, MeshdError, UsageError } from '../errors.js';
import { assignMeshAddresses } from './addressing.js';
import { activeNodes, isNodeActive, memberRecords, nodeRecords, pendingRequests } from './model.js';
import { readableKinds } from './reader.js';
import { ONLINE_WINDOW_MS } from './netmap.js';
import type { NodeRecord } from './records.js';
import { requireJoinedNetwork } from './local-state.js';
import { memberDevicesInvite, noteGrantUse, pendingMemberDevices } from './member-devices.js';
import { NetworkSession, networkDir, requireOwner, x25519OfDid, type ControlContext } from './session.js';
import { WRITE_WIDTH, deliverKey, finishRotation, hasDelivery, revoke, unfinishedRotation, type RemovePeerResult } from './key-rotation.js';

export type { RemovePeerResult } from './key-rotation.js';

export function parsePeerDid(did: string): string {
  try {
    x25519PublicFromEd25519(parseDidJwk(did));
    return canonicalDid(did);
  } catch (e) {
    throw new DidError('E_DID_INVALID', `"${did.length > 60 ? `${did.slice(0, 60)}…` : did}" is not a valid did:jwk`, { cause: e });
  }
}

export interface AddPeerResult {
  did: string;
  /** node: a device was added; member: a person; request: a member asked the owner to add a device. */
  role: 'node' | 'member' | 'request';
  meshIP: string | null;
  meshIP6: string | null;
  epoch: number;
  /** True when the peer was already in the network (the key was delivered again if missing). */
  already: boolean;
}

/**
 * Add (or re-add) `did` as a device owned by `owner`. `reserved` holds the addresses handed out
 * by other additions still in flight in the same batch.
 */
async function addNode(s: NetworkSession, did: string, owner: string, reserved: Set<string>, expiresAt?: string): Promise<AddPeerResult> {
  const net = s.network();
  const epoch = net.data.epoch;
  const all = nodeRecords(s.set, s.joined.networkId, s.joined.anchor);
  const existing = all.find((n) => n.data.did === did);
  if (existing && isNodeActive(existing.data, Date.now()) && existing.data.owner === owner && existing.data.expiresAt === expiresAt) {
    if (!hasDelivery(s, did, epoch)) await deliverKey(s, did, epoch);
    return { did, role: 'node', meshIP: existing.data.meshIP, meshIP6: existing.data.meshIP6, epoch, already: true };
  }
  const taken = new Set<string>(reserved);
  for (const n of all) if (n.data.did !== did) taken.add(n.data.meshIP).add(n.data.meshIP6);
  const addrs =
    existing && !taken.has(existing.data.meshIP) && !taken.has(existing.data.meshIP6)
      ? { meshIP: existing.data.meshIP, meshIP6: existing.data.meshIP6 }
      : assignMeshAddresses(did, net.data.meshCIDR, taken);
  reserved.add(addrs.meshIP).add(addrs.meshIP6);
  const data: NodeRecord = { did, ...addrs, owner, status: 'active', addedAt: new Date().toISOString(), ...(expiresAt ? { expiresAt } : {}) };
  // a re-add keeps the routes the owner approved for the device
  if (existing?.data.status === 'active' && existing.data.approvedRoutes) data.approvedRoutes = existing.data.approvedRoutes;
  // the key first: the device can read its node record as soon as it appears
  await deliverKey(s, did, epoch);
  if (existing) await s.update(existing, data, s.recipients(epoch));
  else await s.writeNew('node', data, { parentContextId: s.joined.networkId, recipient: did, recipients: s.recipients(epoch) });
  return { did, role: 'node', ...addrs, epoch, already: false };
}

async function addMember(s: NetworkSession, did: string): Promise<AddPeerResult> {
  const epoch = s.network().data.epoch;
  const existing = memberRecords(s.set, s.joined.networkId, s.joined.anchor).find((m) => m.data.did === did);
  if (existing?.data.status === 'active') {
    if (!hasDelivery(s, did, epoch)) await deliverKey(s, did, epoch);
    return { did, role: 'member', meshIP: null, meshIP6: null, epoch, already: true };
  }
  await deliverKey(s, did, epoch);
  const data = { did, status: 'active' as const, addedAt: new Date().toISOString() };
  if (existing) await s.update(existing, data, s.recipients(epoch));
  else await s.writeNew('member', data, { parentContextId: s.joined.networkId, recipient: did, recipients: s.recipients(epoch) });
  return { did, role: 'member', meshIP: null, meshIP6: null, epoch, already: false };
}

export interface AddPeersOptions {
  member?: boolean;
  expiresAt?: string;
  /** The member a device belongs to (default: the owner). */
  owner?: string;
}

/** Parse the DIDs and expiry of an add before anything is written (usage errors first). */
export function checkAddRequest(dids: readonly string[], o: AddPeersOptions): { dids: string[]; expiresAt: string | undefined } {
  if (dids.length === 0) throw new UsageError('no DID given');
  if (dids.length > MAX_BATCH) throw new UsageError(`at most ${MAX_BATCH} DIDs at once`);
  const parsed = [...new Set(dids.map(parsePeerDid))];
  const t = o.expiresAt === undefined ? undefined : new Date(Date.parse(o.expiresAt));
  if (t !== undefined && Number.isNaN(t.getTime())) throw new UsageError(`invalid expiry time "${o.expiresAt}"`, { hint: 'use an ISO 8601 time such as 2030-01-31T00:00:00Z' });
  return { dids: parsed, expiresAt: t?.toISOString() };
}

/** Most DIDs one `peer add` takes. */
export const MAX_BATCH = 1000;

/**
 * Add devices (or with `member`, people) in an owner session with network, node, member and
 * keyDelivery loaded — `meshd peer add` opens one; the owner's daemon uses its own, which is
 * always loaded. Additions run a few at a time; addresses never clash within the batch.
 */
export async function addPeersIn(s: NetworkSession, didTexts: readonly string[], o: AddPeersOptions = {}): Promise<AddPeerResult[]> {
  const { dids, expiresAt } = checkAddRequest(didTexts, o);
  requireOwner(s, o.member ? 'add members' : 'add peers');
  if (dids.includes(s.joined.anchor)) throw new UsageError('the network owner is already in the network');
  const reserved = new Set<string>();
  const out = new Map<string, AddPeerResult>();
  await inParallel(dids, WRITE_WIDTH, async (did) => {
    out.set(did, o.member ? await addMember(s, did) : await addNode(s, did, o.owner ?? s.joined.anchor, reserved, expiresAt));
  });
  return dids.map((d) => out.get(d)!);
}

/**
 * Add devices (or with `member`, people) to the network. Run by a member (not the owner) it
 * files a request for each of the member's devices instead, for the owner to approve.
 */
export async function addPeers(ctx: ControlContext, didTexts: readonly string[], o: AddPeersOptions = {}): Promise<AddPeerResult[]> {
  const { dids } = checkAddRequest(didTexts, o);
  const joined = requireJoinedNetwork(networkDir(ctx));
  const asMember = !joined.roles.includes('owner') && joined.roles.includes('member') && !o.member;
  const s = await NetworkSession.open(ctx, { joined, ...(asMember ? { as: 'member' as const } : {}) });
  try {
    if (asMember) {
      const out: AddPeerResult[] = [];
      for (const did of dids) out.push(await requestDevice(s, did));
      return out;
    }
    requireOwner(s, o.member ? 'add members' : 'add peers');
    await s.load(['network', 'node', 'member', 'keyDelivery']);
    return await addPeersIn(s, dids, o);
  } finally {
    await s.close();
  }
}

/** Add one device or person: `addPeers` for one DID. */
export async function addPeer(ctx: ControlContext, didText: string, o: AddPeersOptions = {}): Promise<AddPeerResult> {
  return (await addPeers(ctx, [didText], o))[0]!;
}

/** A member asks the owner to add one of the member's devices (a nodeRequest record). */
async function requestDevice(s: NetworkSession, device: string): Promise<AddPeerResult> {
  await s.load(['keyDelivery', 'network', 'member', 'nodeRequest']);
  const me = memberRecords(s.set, s.joined.networkId, s.joined.anchor).find((m) => m.data.did === s.me);
  if (!me || me.data.status !== 'active') throw new MeshdError('E_NOT_OWNER', 'this identity is not an active member of the network');
  const epoch = s.network().data.epoch;
  const already = s.set.nodeRequest.find((r) => r.author === s.me && r.data.did === device);
  const recipients = s.acc.keyring.privateRecipients(x25519OfDid(s.joined.anchor));
  if (!already) await s.writeNew('nodeRequest', { did: device }, { parentContextId: me.contextId, recipients });
  return { did: device, role: 'request', meshIP: null, meshIP6: null, epoch, already: Boolean(already) };
}

/** Approve a member's request for a device (network, node, member, nodeRequest, keyDelivery loaded). */
export async function approvePeerIn(s: NetworkSession, didText: string): Promise<AddPeerResult> {
  const did = parsePeerDid(didText);
  requireOwner(s, 'approve devices');
  const now = Date.now();
  const req = pendingRequests(s.set, s.joined.networkId, s.joined.anchor, now).find((r) => r.data.did === did);
  const join = req ? undefined : pendingMemberDevices(s, now).find((p) => p.request.data.did === did);
  if (join) {
    // a member's device that asked with the member's invite, over the policy's limit
    const r = await addNode(s, did, join.grant.member, new Set());
    const inv = memberDevicesInvite(s);
    if (inv) await noteGrantUse(s, inv, did, join.grant.nonce, now);
    await s.client.delete(join.request.recordId);
    s.forget(join.request.recordId);
    return r;
  }
  if (!req) {
    const node = nodeRecords(s.set, s.joined.networkId, s.joined.anchor).find((n) => n.data.did === did);
    if (node && isNodeActive(node.data, now)) return await addNode(s, did, node.data.owner, new Set(), node.data.expiresAt);
    throw new MeshdError('E_NO_NETWORK', `no member has requested the device ${did.slice(0, 40)}…`, {
      hint: 'the member runs `meshd peer add DID` first (or add the device yourself with `meshd peer add DID`)',
    });
  }
  return await addNode(s, did, req.author, new Set());
}

/** Approve a member's request for a device: add it as a node owned by that member. */
export async function approvePeer(ctx: ControlContext, didText: string): Promise<AddPeerResult> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'approve devices');
    await s.load(['network', 'node', 'member', 'nodeRequest', 'keyDelivery', 'invite', 'joinRequest']);
    return await approvePeerIn(s, didText);
  } finally {
    await s.close();
  }
}

/**
 * Revoke a device or a member (and the member's devices) in an owner session with everything
 * loaded, and rotate the network key — or, with `rotate: false` (the owner's daemon, which runs
 * the rotation next), only revoke.
 */
export async function removePeerIn(s: NetworkSession, didText: string, opts: { rotate?: boolean } = {}): Promise<RemovePeerResult> {
  const did = parsePeerDid(didText);
  requireOwner(s, 'remove peers');
  if (did === s.joined.anchor) throw new UsageError('the network owner cannot remove itself');
  const nodes = nodeRecords(s.set, s.joined.networkId, s.joined.anchor);
  const member = memberRecords(s.set, s.joined.networkId, s.joined.anchor).find((m) => m.data.did === did && m.data.status === 'active');
  const revoked = nodes.filter((n) => n.data.status === 'active' && (n.data.did === did || (member !== undefined && n.data.owner === did)));
  if (!member && revoked.length === 0) {
    // removed before, by a `peer remove` the DWN cut short: finish that rotation
    const cut = [...nodes, ...memberRecords(s.set, s.joined.networkId, s.joined.anchor)].some((r) => r.data.did === did && r.data.status === 'revoked');
    if (cut && opts.rotate === false && unfinishedRotation(s)) return { removed: [did], epoch: s.network().data.epoch, rotating: true };
    if (cut && (await finishRotation(s))) return { removed: [did], epoch: s.network().data.epoch };
    throw new MeshdError('E_NO_NETWORK', `${did.slice(0, 40)}… is not an active device or member of this network`);
  }
  return revoke(s, revoked.map((n) => n.data.did), member ? [did] : [], opts);
}

/** Revoke a device or a member (and the member's devices), rotate the network key. */
export async function removePeer(ctx: ControlContext, didText: string): Promise<RemovePeerResult> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'remove peers');
    await s.load(OWNER_KINDS);
    return await removePeerIn(s, didText);
  } finally {
    await s.close();
  }
}

/** Everything the owner reads. */
const OWNER_KINDS = readableKinds('owner');

export interface PeerRow {
  did: string;
  self: boolean;
  meshIP: string;
  meshIP6: string;
  owner: string;
  hostname: string | null;
  os: string | null;
  online: boolean;
  endpoints: string[];
  endpointUpdatedAt: string | null;
  /** Filled from the running daemon when there is one; null from the records alone. */
  path: string | null;
  lastHandshake: string | null;
  rxBytes: number | null;
  txBytes: number | null;
}

export interface PeerListing {
  networkId: string;
  peers: PeerRow[];
  /** Owner and members only: members and pending device requests. */
  members: { did: string; status: string }[];
  pending: { did: string; member: string; hostname: string | null }[];
}

/** Peers as the records describe them. */
export async function listPeers(ctx: ControlContext): Promise<PeerListing> {
  const s = await NetworkSession.open(ctx);
  try {
    const kinds = s.role === 'owner' ? (['network', 'node', 'nodeInfo', 'endpoint', 'member', 'nodeRequest', 'invite', 'joinRequest'] as const) : (['keyDelivery', 'network', 'node', 'nodeInfo', 'endpoint'] as const);
    await s.load([...kinds]);
    return peerListing(s, Date.now());
  } finally {
    await s.close();
  }
}

export function peerListing(s: NetworkSession, now: number): PeerListing {
  const id = s.joined.networkId;
  const anchor = s.joined.anchor;
  const net = s.network();
  const view = activeNodes(s.set, id, anchor, net.data.meshCIDR, now);
  const peers: PeerRow[] = view.active.map((a) => {
    const ep = a.endpoint?.data;
    const updated = ep ? Math.max(Date.parse(ep.updatedAt), Date.parse(a.endpoint!.timestamp)) : NaN;
    return {
      did: a.record.data.did,
      self: a.record.data.did === s.me,
      meshIP: a.record.data.meshIP,
      meshIP6: a.record.data.meshIP6,
      owner: a.record.data.owner,
      hostname: a.info?.data.hostname ?? null,
      os: a.info?.data.os ?? null,
      online: Number.isFinite(updated) && Math.abs(now - updated) <= ONLINE_WINDOW_MS,
      endpoints: (ep?.publicEndpoints ?? []).map((e) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`)),
      endpointUpdatedAt: Number.isFinite(updated) ? new Date(updated).toISOString() : null,
      path: null,
      lastHandshake: null,
      rxBytes: null,
      txBytes: null,
    };
  });
  const members = memberRecords(s.set, id, anchor).map((m) => ({ did: m.data.did, status: m.data.status }));
  const pending = [
    ...pendingRequests(s.set, id, anchor, now).map((r) => ({ did: r.data.did, member: r.author, hostname: r.data.hostname ?? null })),
    ...pendingMemberDevices(s, now).map((p) => ({ did: p.request.data.did, member: p.grant.member, hostname: p.request.data.hostname ?? null })),
  ];
  return { networkId: id, peers, members, pending };
}

/**
 * `network create`, `network join`, `network leave` as functions (the CLI and the daemon call
 * these; they print nothing themselves).
 */
import { canonicalDid, parseDidJwk } from '../identity/did-jwk.js';
import { resolveDid } from '../identity/resolve.js';
import { DEFAULT_MESH_CIDR, DEFAULT_MESH_CIDR6, parseIpv4Cidr } from '../identity/mesh-address.js';
import { MeshdError, UsageError } from '../errors.js';
import { initialPolicy } from './acl.js';
import { assignMeshAddresses } from './addressing.js';
import { encryptJson } from './crypto.js';
import { Keyring } from './keyring.js';
import { localNodeInfo, myNodeRecord, publishNodeInfo } from './device-records.js';
import { embeddedEndpoint, freeEmbeddedPort } from './embedded.js';
import { DEFAULT_DWN_PORT } from '../dwn/server.js';
import { forgetNetwork, readJoinedNetwork, writeJoinedNetwork, type JoinedNetwork } from './local-state.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI, protocolDefinition } from './protocol.js';
import type { ActorRole } from './reader.js';
import { validateRecord, type NetworkRecord, type NodeInfoRecord } from './records.js';
import { NetworkSession, networkDir, openDwn, type ControlContext } from './session.js';
import { refuseOverlappingPrefix, slotFor } from './network-slots.js';

export interface CreateNetworkOptions {
  name: string;
  /** DWN URL; without it the embedded DWN is used. */
  endpoint?: string;
  cidr?: string;
  listenPort?: number;
  nodeInfo?: Partial<NodeInfoRecord>;
  /** Port of the embedded DWN when no endpoint is given (default 8787). */
  embeddedPort?: number;
}

export interface NetworkResult {
  networkId: string;
  name: string;
  anchor: string;
  endpoint: string;
  embedded: boolean;
  roles: ActorRole[];
  meshIP: string | null;
  meshIP6: string | null;
  epoch: number;
}

/**
 * Where a network's state goes: the context's slot when the command chose one, else the slot of
 * that network (the primary when free: see network-slots.ts).
 */
function stateDirFor(ctx: ControlContext, networkId: string): string {
  return ctx.stateDir ?? slotFor(ctx.home, ctx.profile, networkId).stateDir;
}

export async function createNetwork(ctx: ControlContext, o: CreateNetworkOptions): Promise<NetworkResult> {
  const cidr = o.cidr ?? DEFAULT_MESH_CIDR;
  parseIpv4Cidr(cidr); // UsageError with a hint when bad
  // one identity may be in several networks, but not in two with overlapping prefixes
  refuseOverlappingPrefix(ctx.home, ctx.profile, cidr);
  const draft: NetworkRecord = {
    name: o.name,
    meshCIDR: cidr,
    meshCIDR6: DEFAULT_MESH_CIDR6,
    epoch: 0,
    ...(o.endpoint ? { anchorEndpoint: o.endpoint } : {}),
    ...(o.listenPort !== undefined ? { listenPort: o.listenPort } : {}),
  };
  try {
    validateRecord('network', draft, 'write');
  } catch (e) {
    throw new UsageError(`invalid network: ${(e as Error).message.replace(/^network\./, '')}`);
  }
  const embedded = o.endpoint === undefined;
  // another meshd home on this machine may serve its embedded DWN on the default port already
  const embeddedPort = embedded ? (o.embeddedPort ?? (await freeEmbeddedPort(ctx.home))) : undefined;
  if (embedded && o.embeddedPort === undefined && embeddedPort !== DEFAULT_DWN_PORT) {
    ctx.progress?.(`port ${DEFAULT_DWN_PORT} serves another meshd home's DWN: this network's embedded DWN uses port ${embeddedPort}`);
  }
  const dwn = await openDwn(ctx, o.endpoint ?? embeddedEndpoint(embeddedPort), embedded);
  try {
    const me = ctx.profile.did;
    const owner = dwn.client(me);
    ctx.progress?.(`installing the wireguard-mesh protocol on ${dwn.endpoint}`);
    await owner.configureProtocol(protocolDefinition());
    // The network id is the network record's id, which depends on its data; so the record is
    // written first encrypted to the owner alone, then rewritten under the epoch-0 network key.
    const selfRecipient = new Keyring(ctx.profile.keys).privateRecipients();
    const first = await owner.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS.network,
      data: await encryptJson(validateRecord('network', draft, 'write'), selfRecipient),
      dataFormat: DATA_FORMAT,
    });
    const networkId = first.recordId;
    const joined: JoinedNetwork = {
      version: 1,
      networkId,
      anchor: me,
      endpoint: embedded ? embeddedEndpoint(embeddedPort) : dwn.endpoint,
      roles: ['owner', 'node'],
      embedded,
      name: o.name,
      meshCIDR: cidr,
      joinedAt: new Date().toISOString(),
    };
    const s = await NetworkSession.forNetwork(ctx, joined, 'owner', { ...dwn, lease: undefined });
    const recipients = s.recipients(0);
    const netRef = { kind: 'network' as const, recordId: networkId, contextId: networkId, parentContextId: '', recipient: undefined, dateCreated: first.message.descriptor.dateCreated };
    await s.update(netRef, draft, recipients);
    ctx.progress?.(`network ${networkId} created; adding this device as its first node`);
    const addrs = assignMeshAddresses(me, cidr, new Set());
    await s.writeNew(
      'node',
      { did: me, ...addrs, owner: me, status: 'active', addedAt: new Date().toISOString() },
      { parentContextId: networkId, recipient: me, recipients },
    );
    await s.writeNew('aclPolicy', initialPolicy(), { parentContextId: networkId, recipients });
    await s.load(['network', 'node', 'nodeInfo']);
    await publishNodeInfo(s, localNodeInfo(o.nodeInfo));
    writeJoinedNetwork(stateDirFor(ctx, networkId), joined);
    return { networkId, name: o.name, anchor: me, endpoint: joined.endpoint, embedded, roles: joined.roles, ...addrs, epoch: 0 };
  } finally {
    await dwn.lease?.release();
  }
}

export interface JoinNetworkOptions {
  anchor: string;
  networkId: string;
  endpoint?: string;
  nodeInfo?: Partial<NodeInfoRecord>;
}

async function endpointForAnchor(anchor: string): Promise<string> {
  const r = await resolveDid(anchor);
  const ep = r.dwnEndpoints[0];
  if (!ep) {
    throw new UsageError(`the owner's DID names no DWN endpoint`, { hint: 'give the DWN with --endpoint URL' });
  }
  return ep;
}

export async function joinNetwork(ctx: ControlContext, o: JoinNetworkOptions): Promise<NetworkResult> {
  let anchor: string;
  try {
    parseDidJwk(o.anchor);
    anchor = canonicalDid(o.anchor);
  } catch {
    throw new UsageError(`--anchor is not a valid did:jwk`);
  }
  if (!/^[A-Za-z0-9]{20,100}$/.test(o.networkId)) throw new UsageError(`--network "${o.networkId}" is not a network id`);
  const dir = stateDirFor(ctx, o.networkId);
  const found = readJoinedNetwork(dir);
  const existing = found?.networkId === o.networkId ? found : undefined;
  if (found && !existing) {
    throw new MeshdError('E_CONFIG_INVALID', `the state chosen for network ${o.networkId} holds network ${found.networkId}`, {
      hint: 'join without --network selecting another network; `meshd status` lists them',
    });
  }
  const endpoint = o.endpoint ?? (existing?.endpoint ?? (await endpointForAnchor(anchor)));
  const embedded = existing?.embedded ?? false;
  const dwn = await openDwn(ctx, endpoint, embedded);
  try {
    const me = ctx.profile.did;
    const probe = dwn.client(anchor);
    const base = { protocol: PROTOCOL_URI, contextId: o.networkId, recipient: me };
    const roles: ActorRole[] = [];
    if ((await probe.query({ ...base, protocolPath: PATHS.node })).length > 0) roles.push('node');
    if ((await probe.query({ ...base, protocolPath: PATHS.member })).length > 0) roles.push('member');
    if (anchor === me) roles.unshift('owner');
    if (roles.length === 0) {
      throw new MeshdError('E_NO_NETWORK', `this device has not been added to network ${o.networkId} on ${dwn.endpoint}`, {
        hint: `ask the owner to run \`meshd peer add ${me}\``,
      });
    }
    const joinedAt = new Date().toISOString();
    let joined: JoinedNetwork = { version: 1, networkId: o.networkId, anchor, endpoint, roles, embedded, joinedAt };
    const role = roles.includes('owner') ? 'owner' : roles.includes('node') ? 'node' : 'member';
    const s = await NetworkSession.forNetwork(ctx, joined, role, { ...dwn, lease: undefined });
    await s.load(['keyDelivery', 'network', 'node', 'nodeInfo']);
    const net = s.network();
    refuseOverlappingPrefix(ctx.home, ctx.profile, net.data.meshCIDR, o.networkId);
    joined = { ...joined, name: net.data.name, meshCIDR: net.data.meshCIDR };
    let meshIP: string | null = null;
    let meshIP6: string | null = null;
    if (roles.includes('node')) {
      const node = myNodeRecord(s);
      meshIP = node.data.meshIP;
      meshIP6 = node.data.meshIP6;
      await publishNodeInfo(s, localNodeInfo(o.nodeInfo));
    }
    writeJoinedNetwork(dir, joined);
    return { networkId: o.networkId, name: net.data.name, anchor, endpoint, embedded, roles, meshIP, meshIP6, epoch: net.data.epoch };
  } finally {
    await dwn.lease?.release();
  }
}

export interface LeaveResult {
  networkId: string;
  deleted: number;
  /** Set when the DWN could not be reached and --force forgot the network anyway. */
  warning?: string;
}

/** Delete the records this identity wrote about itself and forget the network locally. */
export async function leaveNetwork(ctx: ControlContext, o: { force?: boolean } = {}): Promise<LeaveResult> {
  const s = await NetworkSession.open(ctx);
  let deleted = 0;
  try {
    const kinds = ['nodeInfo', 'endpoint', 'nodeRequest'] as const;
    for (const kind of kinds) {
      if (kind === 'nodeRequest' && !s.joined.roles.includes('member')) continue;
      const entries = await s.client.query({ protocol: PROTOCOL_URI, protocolPath: PATHS[kind], contextId: s.joined.networkId, author: s.me });
      for (const e of entries) {
        await s.client.delete(e.recordId);
        deleted++;
      }
    }
  } catch (e) {
    if (!o.force) throw e;
    forgetNetwork(networkDir(ctx));
    return { networkId: s.joined.networkId, deleted, warning: `could not remove records: ${(e as Error).message}` };
  } finally {
    await s.close();
  }
  forgetNetwork(networkDir(ctx));
  return { networkId: s.joined.networkId, deleted };
}

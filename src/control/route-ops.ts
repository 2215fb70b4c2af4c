/**
 * `route list`, `route approve`, `route remove` as functions. A node advertises subnet routes
 * (and the `exit-node` capability) in its own nodeInfo; the owner approves them into the node
 * record, which only the owner writes. Only routes both advertised and approved are used.
 */
import { MeshdError } from '../errors.js';
import { DEFAULT_MESH_CIDR6 } from '../identity/mesh-address.js';
import { activeNodes } from './model.js';
import { parsePeerDid } from './peer-ops.js';
import { EXIT_ROUTE, MAX_ROUTES, parseApprovableRoute, routesInUse } from './routes.js';
import { NetworkSession, requireOwner, type ControlContext } from './session.js';

export interface RouteRow {
  did: string;
  hostname: string | null;
  meshIP: string;
  /** Subnet routes the node advertises. */
  advertised: string[];
  /** Routes the owner approved (0.0.0.0/0: as exit node). */
  approved: string[];
  /** Advertised and approved: what peers use. */
  inUse: string[];
  advertisesExitNode: boolean;
  /** As an exit node it carries IPv6 too (it has an IPv6 uplink, its nodeInfo says). */
  advertisesExitNodeIPv6: boolean;
  exitNode: boolean;
}

export interface RouteChange {
  did: string;
  route: string;
  /** The node's approved routes after the change. */
  approved: string[];
  /** Whether the node advertises it (else the approval waits until it does). */
  advertised: boolean;
  changed: boolean;
}

function meshPrefixes(s: NetworkSession): string[] {
  const n = s.network().data;
  return [n.meshCIDR, n.meshCIDR6 ?? DEFAULT_MESH_CIDR6];
}

/** Every active node with its routes (network, node and nodeInfo loaded). */
export function routeListing(s: NetworkSession, now = Date.now()): RouteRow[] {
  const mesh = meshPrefixes(s);
  const view = activeNodes(s.set, s.joined.networkId, s.joined.anchor, s.network().data.meshCIDR, now);
  return view.active.map((a) => {
    const info = a.info?.data;
    const advertisesExitNode = info?.capabilities?.includes('exit-node') ?? false;
    const inUse = routesInUse(info?.routes, advertisesExitNode, a.record.data.approvedRoutes, mesh);
    return {
      did: a.record.data.did,
      hostname: info?.hostname ?? null,
      meshIP: a.record.data.meshIP,
      advertised: [...(info?.routes ?? [])].sort(),
      approved: [...(a.record.data.approvedRoutes ?? [])].sort(),
      inUse: inUse.routes,
      advertisesExitNode,
      advertisesExitNodeIPv6: advertisesExitNode && info?.exitNodeIPv6 === true,
      exitNode: inUse.exitNode,
    };
  });
}

async function changeRoute(s: NetworkSession, didText: string, routeText: string, approve: boolean): Promise<RouteChange> {
  requireOwner(s, approve ? 'approve routes' : 'remove routes');
  const did = parsePeerDid(didText);
  const route = parseApprovableRoute(routeText, meshPrefixes(s));
  const node = activeNodes(s.set, s.joined.networkId, s.joined.anchor, s.network().data.meshCIDR, Date.now()).active.find((a) => a.record.data.did === did);
  if (!node) {
    throw new MeshdError('E_NO_NETWORK', `${did.slice(0, 40)}… is not an active device of this network`, { hint: 'see `meshd route list` for the devices and their routes' });
  }
  const before = node.record.data.approvedRoutes ?? [];
  const info = node.info?.data;
  const advertised = route === EXIT_ROUTE ? (info?.capabilities?.includes('exit-node') ?? false) : (info?.routes ?? []).includes(route);
  const after = approve ? [...new Set([...before, route])].sort() : before.filter((r) => r !== route);
  if (approve && after.length > MAX_ROUTES + 1) throw new MeshdError('E_USAGE', `a device may have at most ${MAX_ROUTES} approved routes`);
  if (!approve && after.length === before.length) {
    throw new MeshdError('E_USAGE', `${route} is not an approved route of ${did.slice(0, 40)}…`, { hint: 'see `meshd route list`' });
  }
  const changed = after.length !== before.length;
  if (changed) {
    const { approvedRoutes: _old, ...rest } = node.record.data;
    const data = after.length > 0 ? { ...rest, approvedRoutes: after } : rest;
    await s.update(node.record, data, s.recipients(s.network().data.epoch));
  }
  return { did, route, approved: after, advertised, changed };
}

/** Approve one route of a device in an owner session (network, node, nodeInfo loaded). */
export function approveRouteIn(s: NetworkSession, did: string, route: string): Promise<RouteChange> {
  return changeRoute(s, did, route, true);
}

/** Withdraw the approval of one route of a device in an owner session. */
export function removeRouteIn(s: NetworkSession, did: string, route: string): Promise<RouteChange> {
  return changeRoute(s, did, route, false);
}

async function withOwnerSession<T>(ctx: ControlContext, what: string, fn: (s: NetworkSession) => Promise<T>): Promise<T> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, what);
    await s.load(['network', 'node', 'nodeInfo']);
    return await fn(s);
  } finally {
    await s.close();
  }
}

export function approveRoute(ctx: ControlContext, did: string, route: string): Promise<RouteChange> {
  return withOwnerSession(ctx, 'approve routes', (s) => approveRouteIn(s, did, route));
}

export function removeRoute(ctx: ControlContext, did: string, route: string): Promise<RouteChange> {
  return withOwnerSession(ctx, 'remove routes', (s) => removeRouteIn(s, did, route));
}

/** The routes of every device, from the records (any member of the network may list them). */
export async function listRoutes(ctx: ControlContext): Promise<RouteRow[]> {
  const s = await NetworkSession.open(ctx);
  try {
    await s.load(s.role === 'owner' ? ['network', 'node', 'nodeInfo'] : ['keyDelivery', 'network', 'node', 'nodeInfo']);
    return routeListing(s);
  } finally {
    await s.close();
  }
}

/**
 * Subnet routes and exit nodes as the control plane sees them: strict parsing of a route
 * prefix, and which routes of a node are in use — those the node advertises (its own nodeInfo)
 * AND the owner approved (the owner's node record). An exit node is the route 0.0.0.0/0: the
 * node advertises the `exit-node` capability, the owner approves 0.0.0.0/0.
 */
import { MeshdError } from '../errors.js';
import { formatPrefix, overlaps, parsePrefix, PrefixError, tryParsePrefix, type IpPrefix } from '../util/prefix.js';

/** The route an exit node carries (approving it approves the exit node). */
export const EXIT_ROUTE = '0.0.0.0/0';
/** Most routes one node may advertise or have approved. */
export const MAX_ROUTES = 64;

const SPECIAL4 = ['127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'];
const SPECIAL6 = ['::1/128', 'fe80::/10', 'ff00::/8'];

/**
 * Why `text` is not a usable subnet route, or null when it is one. Rules: an IPv4 or IPv6
 * prefix in canonical form with the length written out, no host bits set, not a default route
 * (that is an exit node), not overlapping the mesh's own prefixes, not loopback, link-local or
 * multicast.
 */
export function subnetRouteProblem(text: string, meshPrefixes: readonly string[]): string | null {
  if (typeof text !== 'string' || !text.includes('/')) return 'is not ADDRESS/LENGTH';
  let c: IpPrefix;
  try {
    c = parsePrefix(text, { hostBits: 'reject', bare: 'reject' });
  } catch (e) {
    if (!(e instanceof PrefixError)) throw e;
    return e.reason === 'host-bits' ? 'has host bits set (the address must be the first of its prefix, e.g. 192.168.1.0/24)' : 'is not an IP prefix';
  }
  if (c.bits === 0) return `is a default route: advertise an exit node instead (--advertise-exit-node)`;
  if (formatPrefix(c) !== text) return `is not in canonical form (${formatPrefix(c)})`;
  for (const m of meshPrefixes) {
    const mc = tryParsePrefix(m, { hostBits: 'reject' });
    if (mc && overlaps(c, mc)) return `overlaps the mesh prefix ${m}`;
  }
  for (const s of c.family === 4 ? SPECIAL4 : SPECIAL6) if (overlaps(c, parsePrefix(s, { hostBits: 'reject' }))) return `overlaps ${s} (loopback, link-local or multicast)`;
  return null;
}

/** Parse a comma-separated list of subnet routes (`--advertise-routes`); throws E_USAGE naming the bad one. */
export function parseAdvertisedRoutes(list: string, meshPrefixes: readonly string[]): string[] {
  const items = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length > MAX_ROUTES) throw new MeshdError('E_USAGE', `at most ${MAX_ROUTES} routes`);
  const out: string[] = [];
  for (const it of items) {
    const why = subnetRouteProblem(it, meshPrefixes);
    if (why !== null) throw new MeshdError('E_USAGE', `route "${it.slice(0, 60)}" ${why}`, { hint: 'give prefixes such as 192.168.1.0/24,10.1.0.0/16' });
    if (!out.includes(it)) out.push(it);
  }
  return out;
}

/** A route the owner may approve: a subnet route, or EXIT_ROUTE ("exit-node" is accepted for it). */
export function parseApprovableRoute(text: string, meshPrefixes: readonly string[]): string {
  if (text === 'exit-node' || text === EXIT_ROUTE) return EXIT_ROUTE;
  const why = subnetRouteProblem(text, meshPrefixes);
  if (why !== null) throw new MeshdError('E_USAGE', `route "${text.slice(0, 60)}" ${why}`, { hint: 'give a prefix the node advertises (see `meshd route list`), or exit-node' });
  return text;
}

export interface NodeRoutes {
  /** Subnet routes in use: advertised and approved, valid, sorted. */
  routes: string[];
  /** Advertised as an exit node and approved as one. */
  exitNode: boolean;
}

/** The routes of a node in use, from what it advertises and what the owner approved. */
export function routesInUse(
  advertised: readonly string[] | undefined,
  advertisesExit: boolean,
  approved: readonly string[] | undefined,
  meshPrefixes: readonly string[],
): NodeRoutes {
  const ok = new Set(approved ?? []);
  const routes = [...new Set(advertised ?? [])].filter((r) => ok.has(r) && subnetRouteProblem(r, meshPrefixes) === null).sort();
  return { routes, exitNode: advertisesExit && ok.has(EXIT_ROUTE) };
}

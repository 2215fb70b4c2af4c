/** The bodies of the owner operations the CLI sends to the daemon's control socket, checked. */
import { MeshdError } from '../errors.js';

/**
 * The body of an owner operation sent to the daemon: `{as, dids, member?, expiresAt?}`. `as`
 * must be the daemon's own identity: a command run with another profile does the work itself.
 */
export function ownerRequest(body: unknown, self: string): { dids: string[]; member?: unknown; expiresAt?: unknown } {
  const b = body as { as?: unknown; dids?: unknown; member?: unknown; expiresAt?: unknown } | null;
  if (typeof b !== 'object' || b === null || !Array.isArray(b.dids) || b.dids.length === 0 || !b.dids.every((d) => typeof d === 'string')) {
    throw new MeshdError('E_USAGE', 'expected {"as": DID, "dids": [DID, …]}');
  }
  if (b.as !== self) throw new MeshdError('E_WRONG_PROFILE', 'the daemon runs another identity');
  return { dids: b.dids as string[], member: b.member, expiresAt: b.expiresAt };
}

/** The body of a route operation sent to the daemon: `{as, did, route}`. */
export function routeRequest(body: unknown, self: string): { did: string; route: string } {
  const b = body as { as?: unknown; did?: unknown; route?: unknown } | null;
  if (typeof b !== 'object' || b === null || typeof b.did !== 'string' || typeof b.route !== 'string') {
    throw new MeshdError('E_USAGE', 'expected {"as": DID, "did": DID, "route": CIDR}');
  }
  if (b.as !== self) throw new MeshdError('E_WRONG_PROFILE', 'the daemon runs another identity');
  return { did: b.did, route: b.route };
}

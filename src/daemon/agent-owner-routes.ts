/**
 * The owner's operations on the daemon's loaded session, as control-socket routes: add,
 * approve and remove devices, approve and remove routes, revoke invites. Each runs through the
 * running control client (no session of its own, no full re-read); the CLI falls back to its
 * own session when no daemon runs. Each request must name the identity the daemon runs.
 */
import { MeshdError } from '../errors.js';
import type { ControlClient } from '../control/control-client.js';
import { ownerRequest, routeRequest } from './agent-requests.js';

export function ownerRoutes(did: string, control: () => ControlClient) {
  return {
    // owner operations on the daemon's loaded session (the CLI falls back to its own session)
    'POST /v0/peers/add': (body: unknown) => {
      const b = ownerRequest(body, did);
      return control().ownerOp(async (s) => {
        const { addPeersIn } = await import('../control/peer-ops.js');
        return { results: await addPeersIn(s, b.dids, { member: b.member === true, ...(typeof b.expiresAt === 'string' ? { expiresAt: b.expiresAt } : {}) }) };
      });
    },
    'POST /v0/peers/approve': (body: unknown) => {
      const b = ownerRequest(body, did);
      return control().ownerOp(async (s) => {
        const { approvePeerIn } = await import('../control/peer-ops.js');
        return approvePeerIn(s, b.dids[0]!);
      });
    },
    'GET /v0/routes': async () => {
      const c = control();
      const { routeListing } = await import('../control/route-ops.js');
      return { routes: routeListing(c.session) };
    },
    'POST /v0/routes/approve': (body: unknown) => {
      const b = routeRequest(body, did);
      return control().ownerOp(async (s) => (await import('../control/route-ops.js')).approveRouteIn(s, b.did, b.route));
    },
    'POST /v0/routes/remove': (body: unknown) => {
      const b = routeRequest(body, did);
      return control().ownerOp(async (s) => (await import('../control/route-ops.js')).removeRouteIn(s, b.did, b.route));
    },
    'POST /v0/peers/remove': (body: unknown) => {
      const b = ownerRequest(body, did);
      // revoked at once; the key rotation (100 devices: a minute of DWN writes) runs next in the
      // daemon, and `meshd status` shows what is left of it
      const c = control();
      return c.ownerOp(async (s) => {
        const { removePeerIn } = await import('../control/peer-ops.js');
        const r = await removePeerIn(s, b.dids[0]!, { rotate: false });
        c.finishRotationNow();
        return r;
      });
    },
    'POST /v0/invites/revoke': (body: unknown) => {
      const b = body as { as?: unknown; id?: unknown } | null;
      if (typeof b !== 'object' || b === null || typeof b.id !== 'string') throw new MeshdError('E_USAGE', 'expected {"as": DID, "id": INVITE}');
      if (b.as !== did) throw new MeshdError('E_WRONG_PROFILE', 'the daemon runs another identity');
      const id = b.id;
      return control().ownerOp(async (s) => (await import('../control/invite-ops.js')).revokeInviteIn(s, id));
    },
  };
}

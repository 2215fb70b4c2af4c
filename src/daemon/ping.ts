/**
 * `POST /v0/ping {peer, timeoutMs?}`: one disco ping to a peer named by host name, mesh IP or
 * DID, through the path its traffic takes now (the data plane's own ping). Says why not when
 * the peer is this device, unknown, removed or expired, offline, or cut off by the ACL policy.
 */
import { MeshdError } from '../errors.js';
import type { NetworkMap } from '../control/netmap.js';
import type { DataPlane } from '../engine/dataplane.js';
import { normalizeRelayUrl } from '../engine/magicsock/relay-set.js';
import { aclReach, findPeer, unknownPeerError, type Departed } from './peer-query.js';

export interface PingDeps {
  map(): NetworkMap | undefined;
  /** Why a peer named so is no longer in the map (removed, expired, left), if it was in it. */
  departed(query: string): Departed | undefined;
  /** Is the peer (base64 WireGuard key) online: a fresh endpoint record or a recent handshake. */
  online(wireguardKey: string): boolean;
  dataplane(): DataPlane | undefined;
}

export interface PingAnswer {
  peer: { did: string; hostname: string | null; meshIP: string };
  /** How the ping went out: direct, relay, candidates (no relay), or no-path. */
  sent: string;
  /** null: no pong within the timeout. */
  reply: { via: 'direct' | 'relay'; address: string; latencyMs: number; region?: string } | null;
  /** What the ACL lets this device send the peer ('some': only some protocols or ports). */
  acl: 'all' | 'some' | 'none';
}

function parseBody(body: unknown): { peer: string; timeoutMs: number } {
  const b = body as { peer?: unknown; timeoutMs?: unknown } | null;
  if (typeof b !== 'object' || b === null || typeof b.peer !== 'string' || b.peer.length === 0 || b.peer.length > 512) {
    throw new MeshdError('E_USAGE', 'expected {"peer": NAME|IP|DID, "timeoutMs"?: number}');
  }
  const t = b.timeoutMs === undefined ? 5000 : Number(b.timeoutMs);
  if (!Number.isFinite(t) || t < 10 || t > 60_000) throw new MeshdError('E_USAGE', 'timeoutMs must be 10–60000');
  return { peer: b.peer, timeoutMs: t };
}

export async function pingRoute(deps: PingDeps, body: unknown): Promise<PingAnswer> {
  const { peer: query, timeoutMs } = parseBody(body);
  const map = deps.map();
  const dp = deps.dataplane();
  if (!map || !dp) throw new MeshdError('E_DAEMON', 'the daemon is still starting', { hint: 'try again in a moment' });
  const found = findPeer(map, query);
  if (!found) throw unknownPeerError(query, deps.departed(query));
  const p = found.peer;
  if (found.self) throw new MeshdError('E_USAGE', `${query} is this device (${p.meshIP})`, { hint: 'ping another peer; `meshd status` lists them' });
  const acl = map.self ? aclReach(map.filter, map.self, p) : 'all';
  if (acl === 'none') {
    throw new MeshdError('E_ACL_DENIED', `the ACL policy (version ${map.filter.policyVersion ?? '?'}) lets nothing from this device through to ${p.hostname ?? p.meshIP}`, {
      hint: 'the owner can allow it: `meshd acl show`, then `meshd acl set FILE`',
    });
  }
  if (!deps.online(p.wireguardKey)) {
    const seen = p.endpointUpdatedAt ? `its last endpoint update was at ${p.endpointUpdatedAt}` : 'it never published an endpoint';
    throw new MeshdError('E_PEER_OFFLINE', `${p.hostname ?? p.meshIP} is offline: ${seen} and no handshake is recent`, {
      hint: 'check that meshd runs there (`meshd status` on that machine)',
    });
  }
  const r = await dp.ping(p.wireguardKey, timeoutMs);
  if (r.sent === 'no-disco') {
    throw new MeshdError('E_PEER_OFFLINE', `${p.hostname ?? p.meshIP} has no path-discovery key yet (it never published an endpoint record)`, {
      hint: 'check that meshd runs there (`meshd status` on that machine)',
    });
  }
  if (r.sent === 'busy') throw new MeshdError('E_DAEMON', 'too many pings to this peer are waiting for an answer', { hint: 'wait a few seconds' });
  // a relay is shown by its region (from the relay record), as people name relays
  const region = r.reply?.via === 'relay' ? relayRegion(map, r.reply.address) : undefined;
  const reply = r.reply && region ? { ...r.reply, region } : r.reply;
  return { peer: { did: p.did, hostname: p.hostname, meshIP: p.meshIP }, sent: r.sent, reply, acl };
}

function relayRegion(map: NetworkMap, url: string): string | undefined {
  const same = (a: string) => {
    try {
      return normalizeRelayUrl(a) === normalizeRelayUrl(url);
    } catch {
      return false;
    }
  };
  return map.relays.find((r) => same(r.url))?.region;
}

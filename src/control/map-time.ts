/**
 * What moves in a network map with time alone: each peer's `online` flag (its endpoint record's
 * time within the online window) and a node leaving the map when its `expiresAt` comes. The
 * control client wakes once at the next such moment instead of rebuilding the map on a fixed
 * period: an idle daemon with N peers does no per-peer work until a flag is due to change.
 */
import { isOnline, ONLINE_WINDOW_MS, type MapPeer, type NetworkMap } from './netmap.js';

/** The map with every `online` flag as of `now` (the same object when none changed). */
export function withOnline(map: NetworkMap, now: number): NetworkMap {
  const flag = (p: MapPeer): boolean => isOnline(p.endpointUpdatedAt === null ? NaN : Date.parse(p.endpointUpdatedAt), now);
  const selfChanged = map.self !== null && flag(map.self) !== map.self.online;
  let peers: MapPeer[] | undefined;
  for (let i = 0; i < map.peers.length; i++) {
    const p = map.peers[i]!;
    const online = flag(p);
    if (online !== p.online) (peers ??= [...map.peers])[i] = { ...p, online };
  }
  if (!selfChanged && peers === undefined) return map;
  return { ...map, self: selfChanged ? { ...map.self!, online: !map.self!.online } : map.self, peers: peers ?? map.peers, generatedAt: new Date(now).toISOString() };
}

/**
 * Wall-clock ms of the next moment after `now` at which the map changes with time alone: an
 * `online` flag flips or a node's expiry comes (Infinity: never, until records change).
 */
export function nextTimeChange(map: NetworkMap, now: number): number {
  let next = map.self === null ? Infinity : peerTimeChange(map.self, now);
  for (const p of map.peers) {
    const t = peerTimeChange(p, now);
    if (t < next) next = t;
  }
  return next;
}

/** As nextTimeChange, for one peer. */
export function peerTimeChange(p: MapPeer, now: number): number {
  let next = Infinity;
  if (p.endpointUpdatedAt !== null) {
    const updated = Date.parse(p.endpointUpdatedAt);
    if (Number.isFinite(updated)) {
      // online while now ∈ [updated − window, updated + window]: it flips just outside either end
      const before = updated - ONLINE_WINDOW_MS;
      const after = updated + ONLINE_WINDOW_MS + 1;
      if (before > now) next = before;
      else if (after > now) next = after;
    }
  }
  if (p.expiresAt !== null) {
    const at = Date.parse(p.expiresAt);
    if (Number.isFinite(at) && at > now && at < next) next = at;
  }
  return next;
}

/** Has a node of the map reached its expiry (it must leave the map: a rebuild, not a flag)? */
export function expiryDue(map: NetworkMap, now: number): boolean {
  for (const p of map.self === null ? map.peers : [map.self, ...map.peers]) {
    if (p.expiresAt === null) continue;
    const at = Date.parse(p.expiresAt);
    if (Number.isFinite(at) && at <= now) return true;
  }
  return false;
}

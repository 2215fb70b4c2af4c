/**
 * The peers part of the agent's status: each map peer with what the data plane knows of it
 * (path, endpoint, latency, bytes, handshakes) and whether it is online — heard from just now,
 * by disco or a handshake; only without a data plane do the records say.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetworkMap } from '../control/netmap.js';
import type { DataPlane, DataPlaneStatus } from '../engine/dataplane.js';
import type { AgentPeerStatus } from './agent-types.js';
import { peerEndpoints } from './map-to-config.js';

/**
 * A peer is online when it answered a disco ping (or pinged us, or completed a handshake) this
 * recently. Status checks first: peers not heard from within the window are pinged, and their
 * answers awaited up to LIVENESS_PROBE_WAIT_MS.
 */
const LIVE_MS = 20_000;
const LIVENESS_PROBE_WAIT_MS = 1200;
/** Peers heard from this recently are not pinged again by a status check. */
const LIVENESS_FRESH_MS = 2000;

/** `silent`: keys of peers that did not answer a liveness check just now (offline). */
export function peerStatuses(map: NetworkMap | undefined, dp: DataPlaneStatus | undefined, silent: ReadonlySet<string>, dnsNameOf: (did: string) => string | null): AgentPeerStatus[] {
  const byKey = new Map(dp?.peers.map((p) => [p.publicKey, p]) ?? []);
  const now = Date.now();
  return (map?.peers ?? [])
    .filter((p) => p.did !== map?.self?.did)
    .map((p) => {
      const s = byKey.get(p.wireguardKey);
      const hs = s && s.lastHandshake > 0 ? s.lastHandshake : 0;
      return {
        did: p.did,
        hostname: p.hostname,
        dnsName: dnsNameOf(p.did),
        meshIP: p.meshIP,
        meshIP6: p.meshIP6,
        wireguardKey: p.wireguardKey,
        online: dp ? !silent.has(p.wireguardKey) && ((s?.heardAgoMs !== undefined && s.heardAgoMs <= LIVE_MS) || (hs > 0 && now - hs <= LIVE_MS)) : p.online,
        path: s?.path ?? 'none',
        endpoint: s?.endpoint ?? null,
        endpoints: peerEndpoints(p),
        relay: s?.relay ?? null,
        latencyMs: s?.latencyMs ?? null,
        lastHandshake: hs > 0 ? new Date(hs).toISOString() : null,
        rxBytes: s?.rxBytes ?? 0,
        txBytes: s?.txBytes ?? 0,
        handshakes: s?.handshakes ?? 0,
      };
    });
}

/**
 * The peers not heard from in the last moments are pinged and given a moment to answer: the
 * keys of those that did not (offline, however recently they were heard before).
 */
export async function silentPeers(dp: DataPlane): Promise<Set<string>> {
  const started = Date.now();
  const probed = new Set(dp.probePeers(LIVENESS_FRESH_MS));
  const answered = (p: { heardAgoMs?: number }) => p.heardAgoMs !== undefined && p.heardAgoMs <= Date.now() - started;
  const silent = () => dp.status().peers.filter((p) => probed.has(p.publicKey) && !answered(p));
  let waiting = probed.size > 0 ? silent() : [];
  while (waiting.length > 0 && Date.now() - started < LIVENESS_PROBE_WAIT_MS) {
    await sleep(50);
    waiting = silent();
  }
  return new Set(waiting.map((p) => p.publicKey));
}

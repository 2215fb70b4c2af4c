/** What a peer endpoint reports (`meshd status`, metrics): the path in use, its latency, liveness. */
import { SESSION_ACTIVE_TIMEOUT_MS } from './constants.js';
import type { Candidate, EndpointStatus } from './endpoint-types.js';

/** The endpoint's state this report reads. */
export interface EndpointView {
  best: Pick<Candidate, 'key' | 'latencyMs'> | null;
  trustUntil: number;
  lastSend: number;
  lastHeard: number;
  relayLatencyMs: number | null;
}

/** Direct while the best path is trusted; else the relay when there is one; else none. */
export function endpointStatus(v: EndpointView, candidates: string[], relayUrl: () => string | null, now: number): EndpointStatus {
  const active = now - v.lastSend <= SESSION_ACTIVE_TIMEOUT_MS;
  const base = {
    active,
    candidates,
    ...(v.best !== null ? { bestEndpoint: v.best.key } : {}),
    ...(v.lastHeard !== -Infinity ? { heardAgoMs: Math.max(0, now - v.lastHeard) } : {}),
  };
  if (v.best !== null && now < v.trustUntil) {
    return {
      path: 'direct',
      endpoint: v.best.key,
      ...(v.best.latencyMs !== null ? { latencyMs: Math.round(v.best.latencyMs * 1000) / 1000 } : {}),
      ...base,
    };
  }
  const relay = relayUrl();
  if (relay !== null) {
    return {
      path: 'relay',
      relay,
      ...(v.relayLatencyMs !== null ? { latencyMs: Math.round(v.relayLatencyMs * 1000) / 1000 } : {}),
      ...base,
    };
  }
  return { path: 'none', ...base };
}

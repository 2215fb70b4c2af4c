/** The control client's options, the events it emits and the counters it keeps. */
import type { MeshdError } from '../errors.js';
import type { BackoffOptions } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import type { AdmitResult } from './invite-ops.js';
import type { JoinedNetwork } from './local-state.js';
import type { NetworkMap } from './netmap.js';
import type { SkipCounters } from './reader.js';
import type { ControlContext } from './session.js';

export interface ControlClientOptions {
  ctx: ControlContext;
  joined?: JoinedNetwork;
  /** Quiet time after the last event before re-querying. Default 250 ms. */
  debounceMs?: number;
  /** Longest wait after the first event of a burst. Default 1000 ms. */
  maxDelayMs?: number;
  /** How often a published endpoint is re-written (heartbeat). Default ENDPOINT_HEARTBEAT_MS (8 min), well inside the online window. */
  heartbeatMs?: number;
  /** The window over which this device spreads its own re-writes after a key rotation (default 6 min). */
  reencryptWithinMs?: number;
  /** Reconnects, and retries of a refresh that failed (a DWN read timed out…). */
  backoff?: BackoffOptions;
  /** Keep the last good map on disk (default true). */
  cache?: boolean;
  /** The wall clock of record times, online windows and expiries (default: the system's). */
  clock?: Clock;
}

export type ControlEvent =
  | { type: 'map'; map: NetworkMap; source: 'cache' | 'dwn' }
  | { type: 'connection'; up: boolean; reconnect?: boolean; retryInMs?: number; error?: string }
  | { type: 'error'; error: MeshdError | Error; during: string }
  | { type: 'revoked' }
  | { type: 'expired'; dids: string[] }
  | { type: 'admission'; results: AdmitResult[] };

export interface ControlStats {
  networkId: string;
  role: string;
  connected: boolean;
  mapHash: string | null;
  mapSource: 'cache' | 'dwn' | null;
  refreshes: number;
  events: number;
  /** Maps built from the records (a heartbeat only touches its peer; a re-write of the same content builds nothing). */
  rebuilds: number;
  /** New record versions whose content was the version held (a key rotation's re-encryptions). */
  contentRewrites: number;
  /** This device's own records it re-wrote under a new network key after rotations. */
  reencrypted: number;
  lastRefreshAt: string | null;
  lastError: string | null;
  skipped: SkipCounters;
  revoked: boolean;
  /** DWN requests by purpose: reads named by events, full re-queries, own key-delivery queries, writes. */
  /** DWN requests: eventReads counts every request made for events, batchQueries the queries among them (one for many records of a kind). */
  requests: { eventReads: number; batchQueries: number; fullLoads: number; keyLoads: number; writes: number };
  /** Devices this owner revoked because their expiry came. */
  expired: number;
  /** Key rotations this owner's daemon finished (after `peer remove`, or cut short before). */
  finishedRotations: number;
  /** What is left of a key rotation (owner), as last seen: null when nothing. */
  rotationLeft: { bump: boolean; rewrites: number; deletions: number } | null;
}

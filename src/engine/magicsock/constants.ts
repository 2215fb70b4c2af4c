/**
 * Path-selection timings of the magic socket (the values Tailscale's
 * magicsock uses, a proven place to start), plus the few meshd adds.
 * All in milliseconds.
 */

/** Ping the chosen direct path this often while traffic flows. */
export const HEARTBEAT_INTERVAL_MS = 3000;
/** A direct path is trusted this long after its last pong. */
export const TRUST_UDP_ADDR_MS = 6500;
/** A peer counts as active this long after the last packet sent to it (heartbeats stop after). */
export const SESSION_ACTIVE_TIMEOUT_MS = 45_000;
/** With a direct path slower than GOOD_ENOUGH_LATENCY_MS, probe every candidate this often. */
export const UPGRADE_INTERVAL_MS = 60_000;
/** A direct path this fast is not worth looking past. */
export const GOOD_ENOUGH_LATENCY_MS = 5;
/** Minimum time between discovery pings to one candidate. */
export const DISCO_PING_INTERVAL_MS = 5000;
/** A ping with no pong after this long is forgotten. */
export const PING_TIMEOUT_MS = 5000;
/** Re-run STUN every RESTUN_MIN_MS … RESTUN_MAX_MS (random in between). */
export const RESTUN_MIN_MS = 20_000;
export const RESTUN_MAX_MS = 26_000;
/** A relay connection opened only to reach a peer closes after this long without a send. */
export const RELAY_IDLE_TIMEOUT_MS = 60_000;

// meshd's own additions ------------------------------------------------------------------------

/**
 * Call-me-maybe at most this often per peer (unless our endpoints changed). meshd also answers a
 * call-me-maybe with its own, because a peer may not know our endpoints yet (the endpoint record
 * can lag); this limit keeps two peers from bouncing them back and forth.
 */
export const CALL_ME_MAYBE_INTERVAL_MS = 5000;
/**
 * A ping from a candidate we do not use yet is answered with a ping of ours (the inbound path
 * just proved open, so ours will likely pass too), at most this often per candidate.
 */
export const PING_BACK_INTERVAL_MS = 1000;
/** When no STUN server answered (UDP blocked?), try again this soon instead of 20–26 s. */
export const RESTUN_NO_UDP_MS = 5000;
/** A direct path went silent: re-STUN, but not more often than this. */
export const RESTUN_ON_PATH_LOSS_MIN_MS = 5000;
/** Candidates learned at run time (from a ping or a WireGuard packet) are dropped after this. */
export const LEARNED_CANDIDATE_TTL_MS = SESSION_ACTIVE_TIMEOUT_MS;
/** Candidate addresses kept per peer: learned ones are pruned beyond it, then new ones refused. */
export const MAX_CANDIDATES = 64;
/** Endpoints taken from one call-me-maybe (the rest are ignored); we send at most this many. */
export const MAX_CALL_ME_MAYBE_ENDPOINTS = 32;
/**
 * Pings per peer per DISCO_PING_INTERVAL_MS, whatever triggers them (discovery, heartbeats,
 * ping-backs, call-me-maybe), over a sliding window no message can reset. A peer (or whoever holds
 * its disco key) cannot turn us into a ping cannon aimed at third parties.
 */
export const MAX_PINGS_PER_INTERVAL = 64;
/**
 * A user's pings (`meshd ping`) waiting for their pong, per peer: they bypass the discovery
 * budget (one user ping a second must not wait behind a discovery burst) but cannot pile up.
 */
export const MAX_USER_PINGS_IN_FLIGHT = 8;
/** Period of the magic socket's tick (heartbeats, ping expiry, trust expiry) while a peer is active. */
export const TICK_MS = 250;
/** Sends on the relay path kick discovery at most this often (it is cheap but not free). */
export const SLOW_PATH_DISCOVERY_MIN_MS = 100;
/** Per-request STUN timeout during endpoint discovery. */
export const STUN_TIMEOUT_MS = 2500;

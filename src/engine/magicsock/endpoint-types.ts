/**
 * The types a peer endpoint (endpoint.ts) is made of and talks through: candidates, the I/O
 * contract with the magic socket, status and counters, and path comparison.
 */
import type { DiscoMessage } from './disco.js';
import type { PeerEndpoint } from './endpoint.js';
import type { IpPort } from './stun.js';

/** Where a candidate came from. */
export type CandidateSource = 'config' | 'call-me-maybe' | 'ping' | 'wireguard';

export interface Candidate {
  /** Canonical "ip:port". */
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  /** 20 bytes, addrs layout. */
  readonly addr: Uint8Array;
  /** Listed in the peer's endpoint record (config). */
  fromConfig: boolean;
  /** When the peer last advertised it in a call-me-maybe (-Infinity: never, or withdrawn). */
  callMeMaybeAt: number;
  /** Last ping or authenticated packet received from it (-Infinity: never). */
  lastGotPing: number;
  /** Last ping we sent to it. */
  lastPing: number;
  /** Last ping we sent in answer to one of its pings (rate limit of ping-backs). */
  lastPingBack: number;
  /** Round trip of the last pong, ms. */
  latencyMs: number | null;
  lastPong: number;
  /** Our address as the peer saw it, from the last pong over this path. */
  pongSrc: string | null;
}

export type PingPurpose = 'discovery' | 'heartbeat' | 'user';

/** The answer to a user's ping (`meshd ping`): which path it took and its round trip. */
export interface PingReply {
  via: 'direct' | 'relay';
  /** "ip:port" of the direct path, or the relay URL. */
  address: string;
  latencyMs: number;
}

/** How a user's ping went out: over the trusted direct path, the relay, or every candidate. */
export type PingStart = 'direct' | 'relay' | 'candidates' | 'no-path' | 'no-disco' | 'busy';

export interface SentPing {
  /** null: sent over the relay. */
  readonly to: Candidate | null;
  readonly at: number;
  readonly purpose: PingPurpose;
  /** A user's ping: called with the first pong of its group (then cleared for the others). */
  readonly reply?: { done: boolean; cb: (r: PingReply) => void };
}

export type EndpointEvent =
  | { type: 'path-changed'; from: string; to: string }
  | { type: 'path-lost'; addr: string }
  | { type: 'candidate-added'; addr: string; via: CandidateSource }
  | { type: 'candidate-removed'; addr: string }
  | { type: 'call-me-maybe-sent'; endpoints: number }
  | { type: 'call-me-maybe-received'; endpoints: number; added: number }
  | { type: 'disco-reset' };

/** What an endpoint needs from the magic socket. */
export interface EndpointIo {
  /** Monotonic milliseconds. */
  now(): number;
  /** Our WireGuard public key (sent in pings). */
  readonly nodeKey: Uint8Array;
  /** Seal and send a disco message to the peer: to a candidate, or over the relay (null). */
  sendDisco(ep: PeerEndpoint, to: Candidate | null, msg: DiscoMessage): boolean;
  /** Our current endpoints (public and local), for call-me-maybe. */
  ourEndpoints(): readonly IpPort[];
  /** The relay this peer is reached through, or null when there is none. */
  relayUrlFor(ep: PeerEndpoint): string | null;
  /** Which endpoint owns the source address in addrs slot i (the socket's address map). */
  ownerOf(addrs: Uint8Array, i: number): PeerEndpoint | undefined;
  /**
   * Whether a packet to `ip` would enter our own tunnel (the mesh's prefixes, routes into the
   * TUN): such an address is never a path (the tunnel inside itself loops). Absent: none would.
   */
  tunnelled?(ip: string): boolean;
  candidateAdded(ep: PeerEndpoint, c: Candidate): void;
  candidateRemoved(ep: PeerEndpoint, c: Candidate): void;
  /** Start calling tick() on ep (it has traffic). */
  activate(ep: PeerEndpoint): void;
  event(ep: PeerEndpoint, e: EndpointEvent): void;
}

export interface PeerEndpointConfig {
  /** The peer's disco public key (32 bytes). */
  discoKey: Uint8Array;
  /** "ip:port" candidates from the peer's endpoint record; malformed ones are skipped. */
  endpoints: readonly string[];
  /** The peer's home relay URL (null/undefined: reach it through ours). */
  relayUrl?: string | null;
}

export type PathKind = 'direct' | 'relay' | 'none';

export interface EndpointStatus {
  path: PathKind;
  /** The direct path in use ("ip:port") when path is direct. */
  endpoint?: string;
  /** The relay URL when path is relay. */
  relay?: string;
  /** Round trip of the path in use, from the last pong. */
  latencyMs?: number;
  /** Traffic sent in the last SESSION_ACTIVE_TIMEOUT_MS. */
  active: boolean;
  candidates: string[];
  /** The best direct path known, even when not trusted now. */
  bestEndpoint?: string;
  /** Milliseconds since the peer last answered a ping or pinged us (any path); absent: never. */
  heardAgoMs?: number;
}

export interface EndpointCounters {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  callMeMaybeSent: number;
  callMeMaybeReceived: number;
  pathChanges: number;
  pathLosses: number;
  /** Pings not sent: the peer's ping budget was spent. */
  pingsLimited: number;
  /** Pongs ignored: they came from another address than their ping went to. */
  pongsWrongSource: number;
  /** Candidates refused: the peer had MAX_CANDIDATES already. */
  candidatesRefused: number;
}

/** Is a (with its latency) worth switching to from b? Lower latency wins by more than 1 %. */
export function betterPath(a: Candidate, b: Candidate | null, bTrusted: boolean): boolean {
  if (b === null || !bTrusted) return true;
  if (a === b) return false;
  const la = a.latencyMs ?? Infinity;
  const lb = b.latencyMs ?? Infinity;
  if (lb === Infinity) return la !== Infinity;
  return la < lb * 0.99;
}

/** Same IP and port (the first 18 bytes of the addrs layout). */
export function sameAddr(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 18; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A WireGuard peer: its static key, handshake state, keypairs, endpoint, timers, packets waiting
 * for a handshake, and statistics. Behaviour lives in the device's paths; this is the state they
 * act on (the timer deadlines are here, as wireguard-go keeps them in its Peer).
 */
import type { Endpoint } from './bind.js';
import { CookieGenerator } from './cookie.js';
import { Keypairs } from './keypair.js';
import { Handshake } from './noise.js';

/**
 * The five per-peer timers (deadlines, Infinity when not pending) and their bookkeeping.
 * timers.ts arms and fires them.
 */
export class PeerTimers {
  retransmitHandshake = Infinity;
  sendKeepalive = Infinity;
  newHandshake = Infinity;
  zeroKeyMaterial = Infinity;
  persistentKeepalive = Infinity;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;

  stopAll(): void {
    this.retransmitHandshake = Infinity;
    this.sendKeepalive = Infinity;
    this.newHandshake = Infinity;
    this.zeroKeyMaterial = Infinity;
    this.persistentKeepalive = Infinity;
  }
}

export class Peer {
  readonly publicKeyBase64: string;
  readonly handshake: Handshake;
  readonly cookieGenerator: CookieGenerator;
  readonly keypairs = new Keypairs<Peer>();
  readonly timers = new PeerTimers();
  endpoint: Endpoint | null = null;
  /** Seconds; 0 = off. */
  persistentKeepalive = 0;
  /** IP packets (or empty = keepalive) waiting for a session, oldest first. */
  staged: Uint8Array[] = [];
  /** Last TAI64N we sent, so ours are strictly increasing even if the wall clock steps back. */
  lastSentTimestamp: Uint8Array = new Uint8Array(12);
  /** Removed from the device: every path ignores it. */
  removed = false;

  rxBytes = 0;
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  lastHandshakeWallMs = 0;
  handshakesCompleted = 0;

  constructor(
    readonly publicKey: Uint8Array,
    now: () => number,
    cookieRefreshTime: number,
  ) {
    this.publicKeyBase64 = Buffer.from(publicKey).toString('base64');
    this.handshake = new Handshake(publicKey);
    this.cookieGenerator = new CookieGenerator(publicKey, now, cookieRefreshTime);
  }

  toString(): string {
    return `peer(${this.publicKeyBase64.slice(0, 8)}…)`;
  }
}

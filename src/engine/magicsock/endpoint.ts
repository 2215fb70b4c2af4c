/**
 * One peer as the WireGuard device sees it through the magic socket: an Endpoint object that owns
 * the choice between direct UDP paths and the relay, and the timers behind that choice
 * (Tailscale's design; constants in constants.ts).
 *
 * State:
 * - candidates: ip:ports the peer may be reached at — from its endpoint record (config), from its
 *   call-me-maybe, or learned at run time from an authenticated ping or WireGuard packet —
 *   never an address that enters our own tunnel (io.tunnelled: the mesh, routes into the TUN),
 *   and such a ping is not answered;
 * - best: the direct path in use, trusted until `trustUntil` (TRUST_UDP_ADDR_MS after its last
 *   pong). Untrusted or absent, packets go over the relay (and to the stale best too).
 *
 * Behaviour:
 * - a send with no trusted path starts discovery: ping every candidate not pinged in the last
 *   DISCO_PING_INTERVAL_MS, and send call-me-maybe (our endpoints) over the relay so the peer
 *   pings back at the same time — both NATs open, hole punched;
 * - a pong records latency; the lowest-latency answering candidate wins (ignoring < 1 % gains),
 *   and a pong on the best path extends the trust;
 * - while traffic flows, a heartbeat every HEARTBEAT_INTERVAL_MS pings the best path; when it
 *   goes silent the trust runs out and traffic falls back to the relay; with a path slower than
 *   GOOD_ENOUGH_LATENCY_MS every candidate is probed again every UPGRADE_INTERVAL_MS;
 * - SESSION_ACTIVE_TIMEOUT_MS after the last send the heartbeats stop.
 *
 * Not an amplifier: a call-me-maybe contributes at most MAX_CALL_ME_MAYBE_ENDPOINTS candidates,
 * a peer has at most MAX_CANDIDATES, all pings to a peer share one budget
 * (MAX_PINGS_PER_INTERVAL in any DISCO_PING_INTERVAL_MS) that no message resets, a call-me-maybe
 * re-pings a known candidate no sooner than PING_BACK_INTERVAL_MS after the last ping, and a
 * pong counts only when it comes from the address its ping went to (the relay for relay pings).
 *
 * I/O goes through an EndpointIo (the magic socket, or a fake in unit tests); time is io.now();
 * `tick(now)` runs while the endpoint is active. Per-packet fields are plain fields.
 */
import { randomBytes } from 'node:crypto';
import { hexOf as hex, sameBytes } from '../../util/bytes.js';
import { ADDR_SIZE } from '../packet-batch.js';
import type { Endpoint } from '../wireguard/bind.js';
import { isRelaySource, parseAddr, addrAt, addrOf, isUsableCandidate, relaySourceId, type ParsedAddr } from './addr.js';
import {
  CALL_ME_MAYBE_INTERVAL_MS,
  DISCO_PING_INTERVAL_MS,
  GOOD_ENOUGH_LATENCY_MS,
  HEARTBEAT_INTERVAL_MS,
  LEARNED_CANDIDATE_TTL_MS,
  MAX_CALL_ME_MAYBE_ENDPOINTS,
  MAX_CANDIDATES,
  MAX_PINGS_PER_INTERVAL,
  MAX_USER_PINGS_IN_FLIGHT,
  PING_BACK_INTERVAL_MS,
  PING_TIMEOUT_MS,
  SESSION_ACTIVE_TIMEOUT_MS,
  SLOW_PATH_DISCOVERY_MIN_MS,
  TRUST_UDP_ADDR_MS,
  UPGRADE_INTERVAL_MS,
} from './constants.js';
import type { IpPort } from './stun.js';
export * from './endpoint-types.js';

import { endpointStatus } from './endpoint-status.js';
import { betterPath, sameAddr, type Candidate, type CandidateSource, type EndpointCounters, type EndpointIo, type EndpointStatus, type PeerEndpointConfig, type PingPurpose, type PingReply, type PingStart, type SentPing } from './endpoint-types.js';

export class PeerEndpoint implements Endpoint {
  /** Small unique id (relay source tag). */
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly publicKeyBase64: string;

  // Read on the hot path by the socket -----------------------------------------------------
  /** The best direct path's address (20 bytes, addrs layout), or null. */
  bestAddr: Uint8Array | null = null;
  /** Monotonic ms until which bestAddr is trusted. */
  trustUntil = 0;
  /** Last time a packet was sent to the peer. */
  lastSend = -Infinity;
  /** When the next heartbeat is due; Infinity while idle. */
  heartbeatAt = Infinity;
  // -----------------------------------------------------------------------------------------

  discoKey: Uint8Array | null = null;
  /** NaCl box key between our disco key and the peer's (the socket sets it with the disco key). */
  sharedKey: Uint8Array | null = null;
  relayUrl: string | null = null;
  relayLatencyMs: number | null = null;
  readonly candidates = new Map<string, Candidate>();
  readonly counters: EndpointCounters = {
    pingsSent: 0,
    pongsReceived: 0,
    pingsReceived: 0,
    callMeMaybeSent: 0,
    callMeMaybeReceived: 0,
    pathChanges: 0,
    pathLosses: 0,
    pingsLimited: 0,
    pongsWrongSource: 0,
    candidatesRefused: 0,
  };
  /** Ping budget: when the last MAX_PINGS_PER_INTERVAL pings went (a ring; sliding window). */
  private readonly pingTimes = new Float64Array(MAX_PINGS_PER_INTERVAL).fill(-Infinity);
  private pingSlot = 0;
  private best: Candidate | null = null;
  private trusted = false;
  private readonly sentPings = new Map<string, SentPing>();
  private lastFullPing = -Infinity;
  private lastCallMeMaybe = -Infinity;
  private lastRelayPing = -Infinity;
  private lastSlowPathDiscovery = -Infinity;
  /** Monotonic ms of the peer's last pong to us or ping of us (liveness). */
  private lastHeard = -Infinity;
  private closed = false;

  constructor(
    private readonly io: EndpointIo,
    id: number,
    publicKey: Uint8Array,
  ) {
    if (publicKey.length !== 32) throw new RangeError('peer public key must be 32 bytes');
    this.id = id >>> 0;
    this.publicKey = new Uint8Array(publicKey);
    this.publicKeyBase64 = Buffer.from(this.publicKey).toString('base64');
  }

  // ---------------------------------------------------------------------- Endpoint (device)

  /** Does the source in addrs slot i belong to this peer? Per authenticated packet. */
  matches(addrs: Uint8Array, i: number): boolean {
    const o = i * ADDR_SIZE;
    const b = this.bestAddr;
    if (b !== null) {
      let k = 17;
      while (k >= 0 && addrs[o + k] === b[k]) k--;
      if (k < 0) return true;
    }
    if (isRelaySource(addrs, i)) return relaySourceId(addrs, i) === this.id;
    return this.io.ownerOf(addrs, i) === this;
  }

  /**
   * The peer's WireGuard packet came from a source we did not match: learn it as a candidate
   * (unless it is a relay or another peer's path) and stay the peer's endpoint.
   */
  roamed(addrs: Uint8Array, i: number): Endpoint {
    if (!isRelaySource(addrs, i) && this.io.ownerOf(addrs, i) === undefined) this.onWireGuardFrom(addrAt(addrs, i), this.io.now());
    return this;
  }

  /** One object per peer: equal only to itself. */
  equals(other: Endpoint): boolean {
    return other === this;
  }

  toString(): string {
    const now = this.io.now();
    if (this.best !== null && now < this.trustUntil) return this.best.key;
    const url = this.io.relayUrlFor(this);
    return url === null ? `peer ${this.publicKeyBase64.slice(0, 8)}… (no path)` : `relay ${url}`;
  }

  // ---------------------------------------------------------------------- configuration

  /** Apply the peer's record: disco key (a change resets all path state), candidates, relay. */
  setConfig(cfg: PeerEndpointConfig): void {
    const now = this.io.now();
    if (this.discoKey === null || !sameBytes(this.discoKey, cfg.discoKey)) {
      const had = this.discoKey !== null;
      this.discoKey = new Uint8Array(cfg.discoKey);
      if (had) {
        this.reset();
        this.io.event(this, { type: 'disco-reset' });
      }
    }
    this.relayUrl = cfg.relayUrl ?? null;
    const wanted = new Set<string>();
    for (const s of cfg.endpoints) {
      const a = parseAddr(s);
      if (a === null || !isUsableCandidate(a)) continue;
      wanted.add(a.key);
      const c = this.candidates.get(a.key) ?? this.addCandidate(a, 'config');
      if (c !== null) c.fromConfig = true;
    }
    for (const c of [...this.candidates.values()]) {
      if (c.fromConfig && !wanted.has(c.key)) {
        c.fromConfig = false;
        if (c.callMeMaybeAt === -Infinity && !this.recentlyHeard(c, now)) this.removeCandidate(c);
      }
    }
  }

  /**
   * Drop the candidates whose address now enters our own tunnel (a route into the TUN was
   * added that covers it); returns how many.
   */
  dropTunnelled(): number {
    let n = 0;
    for (const c of [...this.candidates.values()]) {
      if (this.io.tunnelled?.(c.ip) !== true) continue;
      this.removeCandidate(c);
      this.counters.candidatesRefused++;
      n++;
    }
    return n;
  }

  /** Forget every path (new disco key: the peer restarted). */
  reset(): void {
    this.setBest(null);
    this.trustUntil = 0;
    this.trusted = false;
    this.sentPings.clear();
    this.lastFullPing = -Infinity;
    this.lastCallMeMaybe = -Infinity;
    this.lastRelayPing = -Infinity;
    for (const c of this.candidates.values()) {
      c.lastPing = -Infinity;
      c.latencyMs = null;
      c.lastPong = -Infinity;
    }
  }

  /** The peer was removed: drop candidates (unmapping them) and stop. */
  close(): void {
    this.closed = true;
    for (const c of [...this.candidates.values()]) this.removeCandidate(c);
    this.reset();
    this.heartbeatAt = Infinity;
  }

  // ---------------------------------------------------------------------- send side

  /** Is there a trusted direct path right now? */
  hasTrustedPath(now: number): boolean {
    return this.bestAddr !== null && now < this.trustUntil;
  }

  /** A packet is being sent to the peer (any path): keeps the session active. */
  noteSend(now: number): void {
    this.lastSend = now;
    if (this.heartbeatAt === Infinity && !this.closed) {
      this.heartbeatAt = now + HEARTBEAT_INTERVAL_MS;
      this.io.activate(this);
    }
  }

  /** A packet went out without a trusted direct path: look for one (rate limited). */
  onSlowPathSend(now: number): void {
    if (now - this.lastSlowPathDiscovery < SLOW_PATH_DISCOVERY_MIN_MS) return;
    this.lastSlowPathDiscovery = now;
    this.discover(now, true);
  }

  /**
   * Periodic work while active. Returns false once idle (stop calling until next activate):
   * SESSION_ACTIVE_TIMEOUT_MS after the last send, or — woken without traffic — once nothing is
   * left to expire.
   */
  tick(now: number): boolean {
    if (this.closed) return false;
    this.expirePings(now);
    if (this.trusted && now >= this.trustUntil) {
      this.trusted = false;
      this.counters.pathLosses++;
      this.io.event(this, { type: 'path-lost', addr: this.best?.key ?? '' });
    }
    // Not in a session (a liveness probe or a user's ping woke it): tick only until its pings
    // are answered or forgotten and a path it proved is no longer trusted — then idle again.
    if (this.heartbeatAt === Infinity) return this.sentPings.size > 0 || this.trusted;
    if (now < this.heartbeatAt) return true;
    if (now - this.lastSend > SESSION_ACTIVE_TIMEOUT_MS) {
      this.heartbeatAt = Infinity;
      return false;
    }
    this.heartbeatAt = now + HEARTBEAT_INTERVAL_MS;
    if (this.best !== null) this.ping(this.best, now, 'heartbeat');
    if (this.wantFullPing(now)) this.discover(now, true);
    return true;
  }

  /** Should we probe every candidate now? */
  wantFullPing(now: number): boolean {
    if (this.best === null || this.lastFullPing === -Infinity) return true;
    if (now >= this.trustUntil) return true;
    if (this.best.latencyMs !== null && this.best.latencyMs <= GOOD_ENOUGH_LATENCY_MS) return false;
    return now - this.lastFullPing >= UPGRADE_INTERVAL_MS;
  }

  /**
   * Ping every candidate not pinged within DISCO_PING_INTERVAL_MS; with `callMeMaybe`, also ask
   * the peer over the relay to ping us back (at most every CALL_ME_MAYBE_INTERVAL_MS).
   */
  discover(now: number, callMeMaybe: boolean): void {
    if (this.closed || this.sharedKey === null) return;
    this.lastFullPing = now;
    this.prune(now);
    for (const c of this.candidates.values()) {
      if (now - c.lastPing < DISCO_PING_INTERVAL_MS) continue;
      this.ping(c, now, 'discovery');
    }
    if (!callMeMaybe) return;
    if (now - this.lastCallMeMaybe >= CALL_ME_MAYBE_INTERVAL_MS) this.sendCallMeMaybe(now);
    if (!this.hasTrustedPath(now) && now - this.lastRelayPing >= DISCO_PING_INTERVAL_MS) this.pingRelay(now);
  }

  /**
   * Is the peer there? Ping its candidates (and over the relay) now unless it was heard within
   * `freshMs`; its answer shows in `status().heardAgoMs`. Within the ping budget.
   */
  probe(now: number, freshMs: number): boolean {
    if (this.closed || this.sharedKey === null || now - this.lastHeard <= freshMs) return false;
    for (const c of this.candidates.values()) c.lastPing = -Infinity;
    this.discover(now, false);
    if (now - this.lastRelayPing >= 1000) this.pingRelay(now);
    return true;
  }

  /** Our endpoints changed: tell an active peer at once and probe everything again. */
  onLocalEndpointsChanged(now: number): void {
    for (const c of this.candidates.values()) c.lastPing = -Infinity;
    if (this.heartbeatAt === Infinity || this.closed) return;
    this.discover(now, false);
    this.sendCallMeMaybe(now);
  }

  private sendCallMeMaybe(now: number): void {
    if (this.io.relayUrlFor(this) === null) return;
    const all = this.io.ourEndpoints();
    if (all.length === 0) return;
    const mine = all.length > MAX_CALL_ME_MAYBE_ENDPOINTS ? all.slice(0, MAX_CALL_ME_MAYBE_ENDPOINTS) : all;
    this.lastCallMeMaybe = now;
    if (this.io.sendDisco(this, null, { type: 'call-me-maybe', endpoints: mine })) {
      this.counters.callMeMaybeSent++;
      this.io.event(this, { type: 'call-me-maybe-sent', endpoints: mine.length });
    }
  }

  private newTxId(): Uint8Array {
    return new Uint8Array(randomBytes(12));
  }

  /**
   * Take one ping from the budget: at most MAX_PINGS_PER_INTERVAL in any DISCO_PING_INTERVAL_MS
   * window. False (counted) when it is spent.
   */
  private takePing(now: number): boolean {
    if (now - this.pingTimes[this.pingSlot]! < DISCO_PING_INTERVAL_MS) {
      this.counters.pingsLimited++;
      return false;
    }
    this.pingTimes[this.pingSlot] = now;
    this.pingSlot = (this.pingSlot + 1) % MAX_PINGS_PER_INTERVAL;
    return true;
  }

  private ping(c: Candidate, now: number, purpose: PingPurpose): void {
    if (!this.takePing(now)) return;
    const txId = this.newTxId();
    c.lastPing = now;
    this.sentPings.set(hex(txId), { to: c, at: now, purpose });
    this.counters.pingsSent++;
    this.io.sendDisco(this, c, { type: 'ping', txId, nodeKey: this.io.nodeKey });
  }

  /** A ping over the relay: measures the relay path's latency for status. */
  private pingRelay(now: number): void {
    if (this.io.relayUrlFor(this) === null) return;
    this.lastRelayPing = now;
    if (!this.takePing(now)) return;
    const txId = this.newTxId();
    this.sentPings.set(hex(txId), { to: null, at: now, purpose: 'discovery' });
    this.counters.pingsSent++;
    this.io.sendDisco(this, null, { type: 'ping', txId, nodeKey: this.io.nodeKey });
  }

  /**
   * A user's ping (`meshd ping`), through the path traffic takes now: the trusted direct path,
   * else the relay (and path discovery starts, as a packet would start it), else — no relay —
   * every candidate. `reply` gets the first pong; none within PING_TIMEOUT_MS means no answer.
   * Counts as traffic, so the path is kept warm (heartbeats) while the user pings.
   */
  userPing(now: number, reply: (r: PingReply) => void): PingStart {
    if (this.closed) return 'no-path';
    if (this.sharedKey === null) return 'no-disco';
    let inFlight = 0;
    for (const sp of this.sentPings.values()) if (sp.purpose === 'user') inFlight++;
    if (inFlight >= MAX_USER_PINGS_IN_FLIGHT) return 'busy';
    this.noteSend(now);
    const group = { done: false, cb: reply };
    const send = (to: Candidate | null): void => {
      const txId = this.newTxId();
      this.sentPings.set(hex(txId), { to, at: now, purpose: 'user', reply: group });
      this.counters.pingsSent++;
      if (to !== null) to.lastPing = now;
      this.io.sendDisco(this, to, { type: 'ping', txId, nodeKey: this.io.nodeKey });
    };
    if (this.best !== null && this.hasTrustedPath(now)) {
      send(this.best);
      return 'direct';
    }
    if (this.io.relayUrlFor(this) !== null) {
      send(null);
      this.lastRelayPing = now;
      this.onSlowPathSend(now);
      return 'relay';
    }
    if (this.candidates.size === 0) return 'no-path';
    let k = 0;
    for (const c of this.candidates.values()) if (k++ < MAX_USER_PINGS_IN_FLIGHT) send(c);
    return 'candidates';
  }

  private expirePings(now: number): void {
    if (this.sentPings.size === 0) return;
    for (const [id, sp] of this.sentPings) if (now - sp.at >= PING_TIMEOUT_MS) this.sentPings.delete(id);
  }

  // ---------------------------------------------------------------------- receive side

  /**
   * A pong arrived (from: the direct address it came from, or null over the relay). Returns
   * whether it answered one of our pings.
   */
  onPong(txId: Uint8Array, from: ParsedAddr | null, src: IpPort, now: number): boolean {
    const id = hex(txId);
    const sp = this.sentPings.get(id);
    if (sp === undefined) return false;
    // Only from where the ping went: a pong from elsewhere proves nothing about that path.
    if (sp.to === null ? from !== null : from === null || !sameAddr(from.addr, sp.to.addr)) {
      this.counters.pongsWrongSource++;
      return false;
    }
    this.sentPings.delete(id);
    this.counters.pongsReceived++;
    this.lastHeard = now;
    const latency = Math.max(0, now - sp.at);
    if (sp.reply !== undefined && !sp.reply.done) {
      sp.reply.done = true;
      const address = sp.to?.key ?? this.io.relayUrlFor(this) ?? 'relay';
      sp.reply.cb({ via: sp.to === null ? 'relay' : 'direct', address, latencyMs: latency });
    }
    if (sp.to === null) {
      this.relayLatencyMs = latency;
      return true;
    }
    const c = sp.to;
    if (this.candidates.get(c.key) !== c) return true; // forgotten meanwhile
    c.latencyMs = latency;
    c.lastPong = now;
    c.pongSrc = src.ip.includes(':') ? `[${src.ip}]:${src.port}` : `${src.ip}:${src.port}`;
    const bestTrusted = this.best !== null && now < this.trustUntil;
    if (c !== this.best && betterPath(c, this.best, bestTrusted)) this.setBest(c);
    if (this.best === c) {
      this.trustUntil = now + TRUST_UDP_ADDR_MS;
      this.trusted = true;
    }
    return true;
  }

  /**
   * A ping arrived (from: its direct source, or null over the relay). Answers with a pong; a
   * direct source becomes a candidate, and one we do not use yet is pinged back.
   */
  onPing(txId: Uint8Array, from: ParsedAddr | null, now: number): void {
    this.counters.pingsReceived++;
    this.lastHeard = now;
    if (from === null) {
      this.io.sendDisco(this, null, { type: 'pong', txId, src: { ip: '0.0.0.0', port: 0 } });
      return;
    }
    const c = this.candidates.get(from.key) ?? this.addCandidate(from, 'ping');
    if (c === null) return; // no room for another candidate: not answered, not remembered

    c.lastGotPing = now;
    this.io.sendDisco(this, c, { type: 'pong', txId, src: { ip: from.ip, port: from.port } });
    // Our earlier pings to it may have hit its NAT before this opening: ping back (rate limited).
    if ((this.best !== c || now >= this.trustUntil) && now - c.lastPingBack >= PING_BACK_INTERVAL_MS) {
      c.lastPingBack = now;
      this.ping(c, now, 'discovery');
    }
  }

  /**
   * The peer's call-me-maybe (over the relay): its endpoints (the first
   * MAX_CALL_ME_MAYBE_ENDPOINTS) replace the previous ones; ping them now — within the ping
   * budget, and a known candidate no sooner than PING_BACK_INTERVAL_MS after its last ping.
   */
  onCallMeMaybe(endpoints: readonly IpPort[], now: number): void {
    this.counters.callMeMaybeReceived++;
    const seen = new Set<string>();
    let added = 0;
    for (const ep of endpoints) {
      if (seen.size >= MAX_CALL_ME_MAYBE_ENDPOINTS) break;
      const a = addrOf(ep);
      if (a === null || !isUsableCandidate(a) || seen.has(a.key)) continue;
      seen.add(a.key);
      let c: Candidate | null | undefined = this.candidates.get(a.key);
      if (c === undefined) {
        c = this.addCandidate(a, 'call-me-maybe');
        if (c === null) continue;
        added++;
      }
      c.callMeMaybeAt = now;
    }
    for (const c of [...this.candidates.values()]) {
      if (c.callMeMaybeAt !== -Infinity && !seen.has(c.key)) {
        c.callMeMaybeAt = -Infinity;
        if (!c.fromConfig && !this.recentlyHeard(c, now)) this.removeCandidate(c);
      }
    }
    this.io.event(this, { type: 'call-me-maybe-received', endpoints: endpoints.length, added });
    // The peer is pinging us now: ping back at once (the NATs open both ways), but a message
    // only brings a ping forward, never past PING_BACK_INTERVAL_MS or the budget.
    for (const c of this.candidates.values()) if (now - c.lastPing >= PING_BACK_INTERVAL_MS) c.lastPing = -Infinity;
    this.discover(now, true);
  }

  /** An authenticated WireGuard packet came from an address we did not know for this peer. */
  onWireGuardFrom(from: ParsedAddr, now: number): void {
    if (!isUsableCandidate(from)) return;
    const c = this.candidates.get(from.key) ?? this.addCandidate(from, 'wireguard');
    if (c === null) return;
    c.lastGotPing = now;
    if (now - c.lastPingBack >= PING_BACK_INTERVAL_MS) {
      c.lastPingBack = now;
      this.ping(c, now, 'discovery');
    }
  }

  // ---------------------------------------------------------------------- candidates

  private recentlyHeard(c: Candidate, now: number): boolean {
    return now - Math.max(c.lastGotPing, c.lastPong) <= LEARNED_CANDIDATE_TTL_MS;
  }

  /** A new candidate, or null (counted) when the peer has MAX_CANDIDATES even after pruning. */
  private addCandidate(a: ParsedAddr, via: CandidateSource): Candidate | null {
    if (this.io.tunnelled?.(a.ip) === true) {
      this.counters.candidatesRefused++;
      return null;
    }
    if (this.candidates.size >= MAX_CANDIDATES) this.prune(this.io.now(), true);
    if (this.candidates.size >= MAX_CANDIDATES) {
      this.counters.candidatesRefused++;
      return null;
    }
    const c: Candidate = {
      key: a.key,
      ip: a.ip,
      port: a.port,
      addr: new Uint8Array(a.addr),
      fromConfig: false,
      callMeMaybeAt: -Infinity,
      lastGotPing: -Infinity,
      lastPing: -Infinity,
      lastPingBack: -Infinity,
      latencyMs: null,
      lastPong: -Infinity,
      pongSrc: null,
    };
    this.candidates.set(c.key, c);
    this.io.candidateAdded(this, c);
    this.io.event(this, { type: 'candidate-added', addr: c.key, via });
    return c;
  }

  private removeCandidate(c: Candidate): void {
    if (this.candidates.get(c.key) !== c) return;
    this.candidates.delete(c.key);
    this.io.candidateRemoved(this, c);
    if (this.best === c) {
      this.setBest(null);
      this.trustUntil = 0;
      this.trusted = false;
    }
    for (const [id, sp] of this.sentPings) if (sp.to === c) this.sentPings.delete(id);
    this.io.event(this, { type: 'candidate-removed', addr: c.key });
  }

  /** Drop learned candidates not heard from lately (all but config/call-me-maybe ones). */
  private prune(now: number, hard = false): void {
    for (const c of [...this.candidates.values()]) {
      if (c.fromConfig || c.callMeMaybeAt !== -Infinity) continue;
      if (c === this.best && now < this.trustUntil) continue;
      if (hard || !this.recentlyHeard(c, now)) this.removeCandidate(c);
    }
  }

  private setBest(c: Candidate | null): void {
    if (c === this.best) return;
    const from = this.best?.key ?? 'none';
    this.best = c;
    this.bestAddr = c === null ? null : c.addr;
    this.counters.pathChanges++;
    this.io.event(this, { type: 'path-changed', from, to: c?.key ?? 'none' });
  }

  // ---------------------------------------------------------------------- status

  status(now: number): EndpointStatus {
    const v = { best: this.best, trustUntil: this.trustUntil, lastSend: this.lastSend, lastHeard: this.lastHeard, relayLatencyMs: this.relayLatencyMs };
    return endpointStatus(v, [...this.candidates.keys()], () => this.io.relayUrlFor(this), now);
  }
}

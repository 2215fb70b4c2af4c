/**
 * A DERP client: one logical connection to one relay server that keeps itself up.
 *
 * It connects over an HTTP upgrade (`http(s)://…/derp`, raw DERP framing after `101`) or a
 * WebSocket (`ws(s)://…/derp`, subprotocol "derp"; dialing is in dial.ts), logs in with our
 * WireGuard key, then `send(dst, packet)` / `onPacket(src, packet)`. While started it
 * reconnects with exponential backoff and jitter, pings when the line is quiet and reconnects
 * when a ping goes unanswered, and (when `idleTimeoutMs` is set) closes after that long without
 * a send — reopening on the next send. `stop()` closes it for good.
 */
import { randomBytes } from 'node:crypto';
import { MeshdError } from '../../errors.js';
import { backoffDelay } from '../../util/backoff.js';
import { equalBytes, hexOf as hex } from '../../util/bytes.js';
import { systemClock, type Clock, type Ticker } from '../../util/clock.js';
import { boxPublicKey } from '../crypto/nacl-box.js';
import {
  DEFAULT_MAX_FRAME_LEN,
  DerpFrameError,
  FrameParser,
  FrameType,
  KEY_LEN,
  MAX_PACKET_SIZE,
  decodeFrame,
  encodeFrame,
  encodeSendPacket,
  frame,
  type DerpFrame,
} from './frames.js';
import { RelayLoginError, openServerInfo, parseLoginChallenge, sealClientInfo, type ServerInfo } from './login.js';
import { dial, RelayClientError, type Conn, type DialCallbacks } from './dial.js';
import type { FrameTransport } from './transport.js';

export { RelayClientError, RelayPinError } from './dial.js';

export type RelayClientState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface RelayClientOptions {
  /** `http://host:port/derp` (DERP upgrade), `https://…`, `ws://…` or `wss://…` (WebSocket). */
  readonly url: string;
  /** Our X25519 (WireGuard) private key: the relay routes to its public key. */
  readonly privateKey: Uint8Array;
  /** Our public key; derived from privateKey when absent. */
  readonly publicKey?: Uint8Array;
  /** The server's key, when known: a server presenting another key is refused. */
  readonly serverPublicKey?: Uint8Array;
  /**
   * For https/wss: the relay's pinned TLS key fingerprint (base64url SHA-256 of the SPKI, from
   * its relay record). Replaces CA verification; a relay presenting another key is refused.
   * Absent: the certificate must verify normally.
   */
  readonly tlsFingerprint?: string;
  /** A packet for us from src. Both views stay valid after the call (never reused). */
  readonly onPacket?: (src: Uint8Array, packet: Uint8Array) => void;
  /** The server says peer is gone (reason 0 disconnected, 1 not here). */
  readonly onPeerGone?: (peer: Uint8Array, reason: number) => void;
  readonly onPeerPresent?: (peer: Uint8Array) => void;
  readonly onStateChange?: (state: RelayClientState, err?: Error) => void;
  /** The server's health message ('' = healthy again). */
  readonly onHealth?: (problem: string) => void;
  /** Tell the server this is our home relay after each login. */
  readonly preferred?: boolean;
  /** First reconnect delay (default 250 ms); doubles per failure up to backoffMaxMs. */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
  /** Connect + login must finish within this (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Ping when nothing was received for this long (default 30 s). */
  readonly keepAliveMs?: number;
  /** Reconnect when nothing arrives this long after a ping (default 10 s). */
  readonly pongTimeoutMs?: number;
  /** Close after this long without a send, reopen on the next send (0 = never, the default). */
  readonly idleTimeoutMs?: number;
  /** Packets held while (re)connecting; older ones are dropped beyond it (default 32). */
  readonly maxPendingPackets?: number;
  /** Above this many unsent bytes in the socket, send() drops (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** Largest frame accepted from the server (default 64 KiB + 64). */
  readonly maxFrameLength?: number;
  /** Random source in [0,1) for jitter (tests make it deterministic). */
  readonly random?: () => number;
  /** Time and timers: keepalives, round trips, reconnects (default: the system clock). */
  readonly clock?: Clock;
}

export interface RelayClientStats {
  connects: number;
  connectFailures: number;
  disconnects: number;
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  /** Packets dropped: pending queue overflow, socket backlog, or stop with packets pending. */
  packetsDropped: number;
  pingsSent: number;
  pongsReceived: number;
  deadConnections: number;
  idleCloses: number;
  peerGoneReceived: number;
  malformedFrames: number;
  lastError: string | undefined;
}

export class RelayClient {
  readonly url: URL;
  readonly publicKey: Uint8Array;
  private readonly privateKey: Uint8Array;
  private readonly opts: RelayClientOptions;
  private readonly clock: Clock;
  private st: RelayClientState = 'idle';
  private conn: Conn | null = null;
  private readonly pending: { dst: Uint8Array; packet: Uint8Array }[] = [];
  private attempts = 0;
  private reconnectTimer: Ticker | undefined;
  private connectTimer: Ticker | undefined;
  private tickTimer: Ticker | undefined;
  private lastRecvAt = 0;
  private lastSendAt = 0;
  private pingSentAt = 0;
  private pingData: Uint8Array | null = null;
  private readonly pingWaiters = new Map<string, { resolve: (ms: number) => void; reject: (e: Error) => void; at: number; timer: Ticker }>();
  private restartHintMs: number | null = null;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private closedWaiters: (() => void)[] = [];
  private learnedServerKey: Uint8Array | null = null;
  private info: ServerInfo | null = null;
  private preferred: boolean;
  private readonly dialCallbacks: DialCallbacks = {
    attach: (c, t, head) => this.attach(c, t, head),
    fail: (c, err) => this.closeConn(c, err),
  };
  private readonly counters: RelayClientStats = {
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    packetsSent: 0,
    bytesSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    packetsDropped: 0,
    pingsSent: 0,
    pongsReceived: 0,
    deadConnections: 0,
    idleCloses: 0,
    peerGoneReceived: 0,
    malformedFrames: 0,
    lastError: undefined,
  };

  constructor(opts: RelayClientOptions) {
    this.clock = opts.clock ?? systemClock;
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new RelayClientError(`bad relay URL: ${opts.url}`);
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new RelayClientError(`relay URL must be http(s) or ws(s): ${opts.url}`);
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/derp';
    if (opts.privateKey.length !== KEY_LEN) throw new RelayClientError('relay client private key must be 32 bytes');
    this.url = url;
    this.opts = opts;
    this.privateKey = opts.privateKey;
    this.publicKey = opts.publicKey ?? boxPublicKey(opts.privateKey);
    this.preferred = opts.preferred ?? false;
  }

  get state(): RelayClientState {
    return this.st;
  }

  /** The server's public key, once seen. */
  get serverPublicKey(): Uint8Array | null {
    return this.learnedServerKey;
  }

  /** What the server said about itself at the last login. */
  get serverInfo(): ServerInfo | null {
    return this.info;
  }

  stats(): RelayClientStats {
    return { ...this.counters };
  }

  /** Begin connecting (and keep connected). Idempotent. */
  start(): void {
    if (this.st === 'stopped') throw new RelayClientError('relay client was stopped');
    if (this.st === 'idle') this.connect();
  }

  /**
   * Queue packet for dst. Returns true when written to the connection or held for the
   * connection being made; false when dropped. Throws for a bad key or oversized packet.
   */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    if (dst.length !== KEY_LEN) throw new RelayClientError('destination key must be 32 bytes');
    if (packet.length > MAX_PACKET_SIZE) throw new RelayClientError(`packet of ${packet.length} bytes exceeds ${MAX_PACKET_SIZE}`);
    if (this.st === 'stopped') {
      this.counters.packetsDropped++;
      return false;
    }
    this.lastSendAt = this.clock.now();
    const c = this.conn;
    if (this.st === 'connected' && c?.transport) {
      if (c.transport.bufferedBytes > (this.opts.maxBufferedBytes ?? 1 << 20)) {
        this.counters.packetsDropped++;
        return false;
      }
      c.transport.write(encodeSendPacket(dst, packet));
      this.counters.packetsSent++;
      this.counters.bytesSent += packet.length;
      return true;
    }
    const max = this.opts.maxPendingPackets ?? 32;
    if (max <= 0) {
      this.counters.packetsDropped++;
      return false;
    }
    if (this.pending.length >= max) {
      this.pending.shift();
      this.counters.packetsDropped++;
    }
    this.pending.push({ dst: dst.slice(), packet: packet.slice() });
    if (this.st === 'idle') this.connect();
    return true;
  }

  /** Tell the server whether this is our home relay (it only counts it); repeated after reconnects. */
  notePreferred(preferred: boolean): void {
    this.preferred = preferred;
    this.writeFrame({ type: 'note-preferred', preferred });
  }

  /** Round trip through the server in milliseconds (DERP ping/pong). */
  ping(timeoutMs = 5000): Promise<number> {
    if (this.st !== 'connected') return Promise.reject(new RelayClientError('relay not connected'));
    const data = new Uint8Array(randomBytes(8));
    const id = hex(data);
    return new Promise<number>((resolve, reject) => {
      const timer = this.clock.after(timeoutMs, () => {
        this.pingWaiters.delete(id);
        reject(new MeshdError('E_TIMEOUT', `relay ping timed out after ${timeoutMs} ms`));
      });
      this.pingWaiters.set(id, { resolve, reject, at: this.clock.now(), timer });
      this.writeFrame({ type: 'ping', data });
      this.counters.pingsSent++;
    });
  }

  /** Resolves once connected (starting if needed); rejects on timeout or stop. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.st === 'connected') return Promise.resolve();
    if (this.st === 'stopped') return Promise.reject(new RelayClientError('relay client was stopped'));
    this.start();
    return new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          t.cancel();
          resolve();
        },
        reject: (e: Error) => {
          t.cancel();
          reject(e);
        },
      };
      const t = this.clock.after(timeoutMs, () => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new MeshdError('E_TIMEOUT', `relay ${this.url.host} not connected within ${timeoutMs} ms`));
      });
      this.waiters.push(w);
    });
  }

  /** Close for good: no reconnects, pending packets dropped. Resolves when the socket closed. */
  async stop(): Promise<void> {
    if (this.st === 'stopped') return;
    this.setState('stopped');
    this.reconnectTimer?.cancel();
    this.counters.packetsDropped += this.pending.length;
    this.pending.length = 0;
    const err = new RelayClientError('relay client stopped');
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.failPings(err);
    const c = this.conn;
    if (c && c.phase !== 'closed') {
      const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
      this.closeConn(c, null, true);
      await closed;
    }
    this.clearConnTimers();
  }

  // -------------------------------------------------------------------------------------------

  private setState(s: RelayClientState, err?: Error): void {
    if (this.st === s) return;
    this.st = s;
    this.opts.onStateChange?.(s, err);
  }

  private rand(): number {
    return (this.opts.random ?? Math.random)();
  }

  private connect(): void {
    this.reconnectTimer?.cancel();
    this.setState('connecting');
    const c: Conn = {
      transport: null,
      parser: new FrameParser(this.opts.maxFrameLength ?? DEFAULT_MAX_FRAME_LEN),
      phase: 'dialing',
      serverKey: null,
      headerKey: null,
      abort: null,
    };
    this.conn = c;
    this.connectTimer = this.clock.after(this.opts.connectTimeoutMs ?? 10_000, () =>
      this.closeConn(c, new RelayClientError(`connect to ${this.url.host} timed out`)),
    );
    dial(
      c,
      this.url,
      { maxFrameLength: this.opts.maxFrameLength ?? DEFAULT_MAX_FRAME_LEN, ...(this.opts.tlsFingerprint !== undefined ? { fingerprint: this.opts.tlsFingerprint } : {}) },
      this.dialCallbacks,
    );
  }

  private attach(c: Conn, t: FrameTransport, head: Uint8Array | undefined): void {
    c.transport = t;
    c.phase = 'server-key';
    t.bind({
      onData: (chunk) => this.onData(c, chunk),
      onDrain: () => undefined,
      onClose: (err) => this.closeConn(c, err ? new RelayClientError(`relay connection error: ${err.message}`, { cause: err }) : new RelayClientError('relay closed the connection')),
    });
    if (head && head.length > 0) this.onData(c, head);
  }

  private onData(c: Conn, chunk: Uint8Array): void {
    if (c.phase === 'closed') return;
    this.lastRecvAt = this.clock.now();
    try {
      c.parser.push(chunk, (type, payload) => this.onFrame(c, type, payload));
    } catch (e) {
      if (e instanceof DerpFrameError || e instanceof RelayLoginError || e instanceof RelayClientError) {
        if (e instanceof DerpFrameError) this.counters.malformedFrames++;
        this.closeConn(c, e);
        return;
      }
      throw e;
    }
  }

  private onFrame(c: Conn, type: number, payload: Uint8Array): void {
    if (c.phase === 'closed') return;
    if (c.phase === 'server-key') {
      const f = decodeFrame(type, payload);
      if (f.type !== 'server-key') throw new RelayClientError(`relay greeted with frame type 0x${type.toString(16)}, not its key`);
      const key = f.key.slice();
      if (c.headerKey && !equalBytes(c.headerKey, key)) throw new RelayClientError('relay key frame does not match its Derp-Public-Key header');
      if (this.opts.serverPublicKey && !equalBytes(this.opts.serverPublicKey, key)) throw new RelayClientError('relay presented an unexpected server key');
      c.serverKey = key;
      this.learnedServerKey = key;
      // A meshd server's login challenge goes into the box, so this login cannot be replayed.
      const challenge = parseLoginChallenge(f.extra);
      const info = challenge === null ? { canAckPings: true } : { canAckPings: true, serverNonce: challenge };
      c.transport!.write(frame(FrameType.ClientInfo, this.publicKey, sealClientInfo(this.privateKey, key, info)));
      c.phase = 'server-info';
      return;
    }
    if (c.phase === 'server-info') {
      if (type !== FrameType.ServerInfo) {
        // Tailscale clients skip other frames until the server info; so do we.
        return;
      }
      const f = decodeFrame(type, payload);
      if (f.type === 'server-info') this.info = openServerInfo(this.privateKey, c.serverKey!, f.sealed);
      this.onLoggedIn(c);
      return;
    }
    let f: DerpFrame;
    if (type === FrameType.RecvPacket) {
      f = decodeFrame(type, payload);
      if (f.type !== 'recv-packet') return;
      this.counters.packetsReceived++;
      this.counters.bytesReceived += f.packet.length;
      this.opts.onPacket?.(f.src, f.packet);
      return;
    }
    f = decodeFrame(type, payload);
    switch (f.type) {
      case 'keep-alive':
        return;
      case 'ping':
        c.transport!.write(frame(FrameType.Pong, f.data));
        return;
      case 'pong': {
        this.counters.pongsReceived++;
        this.pingData = null;
        const w = this.pingWaiters.get(hex(f.data));
        if (w) {
          this.pingWaiters.delete(hex(f.data));
          w.timer.cancel();
          w.resolve(this.clock.now() - w.at);
        }
        return;
      }
      case 'peer-gone':
        this.counters.peerGoneReceived++;
        this.opts.onPeerGone?.(f.key.slice(), f.reason);
        return;
      case 'peer-present':
        this.opts.onPeerPresent?.(f.key.slice());
        return;
      case 'health':
        this.opts.onHealth?.(f.problem);
        return;
      case 'restarting':
        this.restartHintMs = f.reconnectInMs;
        return;
      default:
        return;
    }
  }

  private onLoggedIn(c: Conn): void {
    c.phase = 'ready';
    this.connectTimer?.cancel();
    this.attempts = 0;
    this.restartHintMs = null;
    this.counters.connects++;
    const now = this.clock.now();
    this.lastRecvAt = now;
    if (this.lastSendAt === 0 || this.pending.length === 0) this.lastSendAt = now;
    this.pingData = null;
    this.setState('connected');
    if (this.preferred) c.transport!.write(encodeFrame({ type: 'note-preferred', preferred: true }));
    for (const p of this.pending.splice(0)) {
      c.transport!.write(encodeSendPacket(p.dst, p.packet));
      this.counters.packetsSent++;
      this.counters.bytesSent += p.packet.length;
    }
    const ka = this.opts.keepAliveMs ?? 30_000;
    const pt = this.opts.pongTimeoutMs ?? 10_000;
    const idle = this.opts.idleTimeoutMs ?? 0;
    const period = Math.max(50, Math.floor(Math.min(ka, pt, idle > 0 ? idle : Infinity) / 4));
    this.tickTimer = this.clock.every(period, () => this.tick(c), { unref: true });
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** Keepalive, dead-connection and idle checks. */
  private tick(c: Conn): void {
    if (c !== this.conn || c.phase !== 'ready') return;
    const now = this.clock.now();
    const idle = this.opts.idleTimeoutMs ?? 0;
    if (idle > 0 && now - this.lastSendAt >= idle) {
      this.counters.idleCloses++;
      this.closeConn(c, null, false, true);
      return;
    }
    const pt = this.opts.pongTimeoutMs ?? 10_000;
    if (this.pingData !== null && this.lastRecvAt < this.pingSentAt && now - this.pingSentAt >= pt) {
      this.counters.deadConnections++;
      this.closeConn(c, new RelayClientError(`relay ${this.url.host} did not answer a ping within ${pt} ms`));
      return;
    }
    const ka = this.opts.keepAliveMs ?? 30_000;
    if (this.pingData === null && now - this.lastRecvAt >= ka) {
      this.pingData = new Uint8Array(randomBytes(8));
      this.pingSentAt = now;
      this.counters.pingsSent++;
      c.transport!.write(frame(FrameType.Ping, this.pingData));
    } else if (this.pingData !== null && this.lastRecvAt >= this.pingSentAt) {
      this.pingData = null;
    }
  }

  private writeFrame(f: DerpFrame): void {
    const c = this.conn;
    if (this.st === 'connected' && c?.transport) c.transport.write(encodeFrame(f));
  }

  private clearConnTimers(): void {
    this.connectTimer?.cancel();
    this.tickTimer?.cancel();
    this.connectTimer = undefined;
    this.tickTimer = undefined;
  }

  private failPings(err: Error): void {
    for (const w of this.pingWaiters.values()) {
      w.timer.cancel();
      w.reject(err);
    }
    this.pingWaiters.clear();
  }

  /**
   * End connection c. err: why (null for a deliberate close). stopping: from stop(). idle: an
   * idle close (no reconnect until the next send).
   */
  private closeConn(c: Conn, err: Error | null, stopping = false, idle = false): void {
    if (c.phase === 'closed') {
      if (c.transport?.closed !== false) this.notifyClosed(c);
      return;
    }
    const wasReady = c.phase === 'ready';
    c.phase = 'closed';
    c.parser.fail();
    if (c.abort) c.abort();
    if (c.transport && !c.transport.closed) {
      if (stopping || idle) c.transport.close();
      else c.transport.destroy();
    } else {
      queueMicrotask(() => this.notifyClosed(c));
    }
    if (c !== this.conn) return;
    this.clearConnTimers();
    if (err) this.counters.lastError = err.message;
    if (wasReady) this.counters.disconnects++;
    else if (!stopping) this.counters.connectFailures++;
    this.failPings(err ?? new RelayClientError('relay connection closed'));
    if (this.st === 'stopped') return;
    if (idle) {
      this.setState('idle');
      return;
    }
    this.scheduleReconnect(err ?? undefined);
  }

  private notifyClosed(c: Conn): void {
    if (c !== this.conn) return;
    for (const r of this.closedWaiters.splice(0)) r();
  }

  private scheduleReconnect(err?: Error): void {
    const min = this.opts.backoffMinMs ?? 250;
    const max = this.opts.backoffMaxMs ?? 30_000;
    let delay: number;
    if (this.restartHintMs !== null) {
      delay = this.restartHintMs;
      this.restartHintMs = null;
    } else {
      delay = backoffDelay(this.attempts, { initialMs: min, maxMs: max }, () => this.rand());
    }
    this.attempts++;
    this.setState('backoff', err);
    this.reconnectTimer = this.clock.after(delay, () => {
      if (this.st === 'backoff') this.connect();
    });
  }
}

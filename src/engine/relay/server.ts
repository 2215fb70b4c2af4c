/**
 * The DERP relay server: HTTPS (or, for tests and opted-in labs, plain HTTP) `GET /derp`
 * upgraded to DERP framing (raw TCP after `101`, or a WebSocket), packets routed by the
 * destination's public key, plus a STUN responder on UDP.
 *
 * Per connection: ServerKey → (ClientInfo, boxed to our key) → ServerInfo, then SendPacket
 * frames become RecvPacket frames on the destination's connection. A sender whose destination is
 * not here gets PeerGone(not-here) (rate limited); when a client leaves, every client it had sent
 * to gets PeerGone(disconnected), as Tailscale's server does. Keepalives at least every 60 s,
 * pings answered. A connection that sends a malformed or oversized frame is closed — that one
 * only. Each connection's send queue is bounded; what does not fit is dropped and counted.
 *
 * Fair use and bounded memory, for a relay on the open internet: at most `maxConnections`
 * connections and `maxConnectionsPerIp` per source address (refused at accept); a connection
 * must upgrade and log in within `loginTimeoutMs` and cannot make the server buffer more than a
 * ClientInfo before it did; each key's sends are token-bucket limited; the "sent to" sets
 * behind PeerGone are per connection, capped, and cleaned when either side leaves. Every drop
 * and refusal has a counter (`stats()`).
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import { MeshdError } from '../../errors.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/log.js';
import { boxPublicKey, generateBoxKeyPair } from '../crypto/nacl-box.js';
import { stunRespond } from '../magicsock/stun.js';
import { DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION, PeerGoneReason } from './frames.js';
import { hex, newStats, ServerConn, type ConnHost, type DropReason, type RelayServerStats } from './server-conn.js';
import { SocketTransport, WebSocketTransport, type FrameTransport } from './transport.js';

export type { RelayServerStats } from './server-conn.js';

export const DEFAULT_STUN_PORT = 3478;
export const DEFAULT_KEEPALIVE_MS = 60_000;
export const DEFAULT_SEND_QUEUE = 32;
export const DEFAULT_LOGIN_TIMEOUT_MS = 10_000;
export const DEFAULT_WRITE_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 64;
/** Default per-key send limit: 4 MiB/s with a 8 MiB burst (advertised in ServerInfo). */
export const DEFAULT_SEND_RATE_BYTES_PER_SEC = 4 << 20;
export const DEFAULT_MAX_WATCHED_PER_CONN = 4096;

/** TLS material of the relay (PEM). */
export interface RelayTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface RelayServerOptions {
  /** TCP port for HTTP (0 = any free port). */
  readonly httpPort: number;
  /** UDP port of the STUN responder (default 3478; 0 = any free port; null = no STUN). */
  readonly stunPort?: number | null;
  /** Address to listen on (default 0.0.0.0; '::' for dual-stack). */
  readonly host?: string;
  /** The server's X25519 private key (32 bytes); a fresh one when absent. */
  readonly serverKey?: Uint8Array;
  /** Interval of KeepAlive frames to each client, at most 60 s (default 60 s, minus jitter). */
  readonly keepAliveMs?: number;
  /** Frames queued per client beyond the socket buffer before dropping (default 32). */
  readonly sendQueueDepth?: number;
  /** Time a new connection has to log in (default 10 s). */
  readonly loginTimeoutMs?: number;
  /** A client whose socket stays blocked this long is closed (default 5 s). */
  readonly writeTimeoutMs?: number;
  /** Largest frame accepted from a client (default 64 KiB + 64). */
  readonly maxFrameLength?: number;
  /** PeerGone(not-here) replies a client can get per second (burst 3, default 1/s). */
  readonly notHereRatePerSec?: number;
  /** Serve HTTPS/WSS with this certificate; absent: plain HTTP (tests, opted-in labs). */
  readonly tls?: RelayTlsOptions;
  /** Connections open at once, logged in or not (default 10,000). */
  readonly maxConnections?: number;
  /** Connections open at once from one source address (default 64). */
  readonly maxConnectionsPerIp?: number;
  /** Bytes per second each key may send (default 4 MiB/s; 0 = no limit). */
  readonly sendRateBytesPerSec?: number;
  /** Burst of that limit (default twice the rate). */
  readonly sendBurstBytes?: number;
  /** Sources remembered per client for PeerGone (default 4096). */
  readonly maxWatchedPerConn?: number;
  /** Accept standard DERP clients, whose login has no challenge and can be replayed (default false). */
  readonly allowLegacyLogin?: boolean;
  /** Diagnostics (connections closed, STUN socket errors); default: none. */
  readonly log?: Logger;
  /** Monotonic time for keepalives and rate windows (default: the system clock). */
  readonly clock?: Clock;
}

/** One accepted TCP connection, from accept until close. */
interface Slot {
  readonly ip: string;
  upgraded: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The source address a connection counts against (IPv4-mapped IPv6 as IPv4). */
function sourceIp(addr: string | undefined): string {
  const a = addr ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export interface RelayServerAddress {
  readonly host: string;
  readonly httpPort: number;
  readonly stunPort: number | null;
  /** http(s)://host:port/derp */
  readonly url: string;
  readonly tls: boolean;
}

/** A running DERP relay with its STUN responder. Create with `startRelayServer`. */
export class RelayServer implements ConnHost {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** Live counters (mutated in place); `stats()` returns a copy. */
  readonly counters: RelayServerStats = newStats();
  readonly keepAliveMs: number;
  readonly sendQueueDepth: number;
  readonly loginTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly maxFrameLength: number;
  readonly notHereRatePerSec: number;
  readonly sendRateBytesPerSec: number;
  readonly sendBurstBytes: number;
  readonly maxWatchedPerConn: number;
  readonly allowLegacyLogin: boolean;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly log: Logger;
  readonly clock: Clock;
  private readonly host: string;
  private readonly http: HttpServer | HttpsServer;
  private readonly wss: WebSocketServer;
  private stun: UdpSocket | null = null;
  private readonly conns = new Set<ServerConn>();
  /** key id → connections for that key; the last one is active. */
  private readonly clients = new Map<string, ServerConn[]>();
  /** key id → connections that received packets from that key. */
  private readonly watchers = new Map<string, Set<ServerConn>>();
  /** Open TCP connections by "address|port" (the same for a TLS socket and its TCP socket). */
  private readonly slots = new Map<string, Slot>();
  /** Open connections per source address (entries removed at zero). */
  private readonly perIp = new Map<string, number>();
  private httpPort = 0;
  private stunPort: number | null = null;
  private stopped = false;

  /** Use `startRelayServer`. */
  constructor(private readonly opts: RelayServerOptions) {
    if (opts.serverKey !== undefined && opts.serverKey.length !== 32) throw new MeshdError('E_RELAY', 'relay server key must be 32 bytes');
    if (opts.serverKey) {
      this.privateKey = opts.serverKey;
      this.publicKey = boxPublicKey(opts.serverKey);
    } else {
      const kp = generateBoxKeyPair();
      this.privateKey = kp.privateKey;
      this.publicKey = kp.publicKey;
    }
    this.keepAliveMs = Math.min(opts.keepAliveMs ?? DEFAULT_KEEPALIVE_MS, DEFAULT_KEEPALIVE_MS);
    this.sendQueueDepth = opts.sendQueueDepth ?? DEFAULT_SEND_QUEUE;
    this.loginTimeoutMs = opts.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
    this.writeTimeoutMs = opts.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.maxFrameLength = opts.maxFrameLength ?? DEFAULT_MAX_FRAME_LEN;
    this.notHereRatePerSec = opts.notHereRatePerSec ?? 1;
    this.sendRateBytesPerSec = opts.sendRateBytesPerSec ?? DEFAULT_SEND_RATE_BYTES_PER_SEC;
    this.sendBurstBytes = Math.max(opts.sendBurstBytes ?? this.sendRateBytesPerSec * 2, this.maxFrameLength);
    this.maxWatchedPerConn = Math.max(1, opts.maxWatchedPerConn ?? DEFAULT_MAX_WATCHED_PER_CONN);
    this.allowLegacyLogin = opts.allowLegacyLogin ?? false;
    this.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxConnectionsPerIp = opts.maxConnectionsPerIp ?? DEFAULT_MAX_CONNECTIONS_PER_IP;
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
    this.host = opts.host ?? '0.0.0.0';
    const onReq = (req: IncomingMessage, res: ServerResponse): void => this.onRequest(req, res);
    this.http = opts.tls
      ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: this.loginTimeoutMs, minVersion: 'TLSv1.2' }, onReq)
      : createServer(onReq);
    this.http.on('connection', (socket: Socket) => this.onConnection(socket));
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_err, socket: Socket) => socket.destroy());
    this.http.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      // A message may carry several frames; a frame may span messages.
      maxPayload: this.maxFrameLength * 2 + 64,
      handleProtocols: (protocols) => (protocols.has('derp') ? 'derp' : false),
    });
    this.wss.on('headers', (headers) => {
      headers.push(`Derp-Version: ${PROTOCOL_VERSION}`, `Derp-Public-Key: ${hex(this.publicKey)}`);
    });
  }

  /** Listen on HTTP and (unless disabled) STUN. */
  async start(): Promise<void> {
    this.http.listen(this.opts.httpPort, this.host);
    await once(this.http, 'listening');
    const a = this.http.address();
    this.httpPort = typeof a === 'object' && a ? a.port : this.opts.httpPort;
    const stunPort = this.opts.stunPort === undefined ? DEFAULT_STUN_PORT : this.opts.stunPort;
    if (stunPort !== null) {
      try {
        this.stun = await this.startStun(stunPort);
      } catch (e) {
        await this.stop();
        throw new MeshdError('E_RELAY', `cannot listen for STUN on UDP ${this.host}:${stunPort}`, { cause: e });
      }
    }
  }

  private async startStun(port: number): Promise<UdpSocket> {
    const v6 = this.host.includes(':');
    const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: false });
    sock.on('message', (msg, rinfo) => {
      this.counters.stunRequests++;
      const res = stunRespond(msg, rinfo.address, rinfo.port);
      if (res === null) {
        this.counters.stunDropped++;
        return;
      }
      sock.send(res, rinfo.port, rinfo.address, (err) => {
        if (err) this.counters.stunDropped++;
        else this.counters.stunResponses++;
      });
    });
    sock.on('error', (e) => this.log.warn('stun-socket-error', { error: e.message }));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, this.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    this.stunPort = sock.address().port;
    return sock;
  }

  address(): RelayServerAddress {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    const scheme = this.opts.tls ? 'https' : 'http';
    return { host: this.host, httpPort: this.httpPort, stunPort: this.stunPort, url: `${scheme}://${h}:${this.httpPort}/derp`, tls: this.opts.tls !== undefined };
  }

  /** A snapshot of the counters. */
  stats(): RelayServerStats {
    return { ...this.counters, currentClients: this.clients.size, currentConnections: this.slots.size, watchedKeys: this.watchers.size };
  }

  /** Distinct keys some connection remembers for PeerGone (tests: it must not only grow). */
  get watchedKeys(): number {
    return this.watchers.size;
  }

  /** A new TCP connection: apply the caps, and give it loginTimeoutMs to upgrade. */
  private onConnection(socket: Socket): void {
    socket.on('error', () => undefined);
    const ip = sourceIp(socket.remoteAddress);
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.slots.size >= this.maxConnections) {
      this.counters.refusedTotalCap++;
      socket.destroy();
      return;
    }
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.maxConnectionsPerIp) {
      this.counters.refusedPerIpCap++;
      socket.destroy();
      return;
    }
    this.perIp.set(ip, n + 1);
    const id = `${socket.remoteAddress}|${socket.remotePort}`;
    const slot: Slot = { ip, upgraded: false, timer: undefined };
    slot.timer = setTimeout(() => {
      if (slot.upgraded) return;
      this.counters.upgradeTimeouts++;
      socket.destroy();
    }, this.loginTimeoutMs);
    slot.timer.unref();
    this.slots.set(id, slot);
    socket.once('close', () => {
      clearTimeout(slot.timer);
      if (this.slots.get(id) === slot) this.slots.delete(id);
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, left);
    });
  }

  /** Stop listening and close every connection; resolves when all is closed. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    for (const c of [...this.conns]) c.kill('server stopping');
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    if (this.stun) {
      const s = this.stun;
      this.stun = null;
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    await closed;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/derp/probe' || path === '/derp/latency-check') {
      res.writeHead(200, { 'Access-Control-Allow-Origin': '*' }).end();
      return;
    }
    if (path === '/derp') {
      this.counters.nonUpgradeRequests++;
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'DERP', Connection: 'Upgrade' });
      res.end('DERP requires connection upgrade\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const path = (req.url ?? '/').split('?')[0];
    const up = String(req.headers.upgrade ?? '').toLowerCase();
    if (this.stopped || path !== '/derp' || (up !== 'derp' && up !== 'websocket')) {
      this.counters.nonUpgradeRequests++;
      const status = path === '/derp' ? '426 Upgrade Required' : '404 Not Found';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    // From here the connection's own login timer runs (server-conn.ts).
    const slot = this.slots.get(`${socket.remoteAddress}|${socket.remotePort}`);
    if (slot) {
      slot.upgraded = true;
      clearTimeout(slot.timer);
    }
    if (up === 'websocket' && req.headers['sec-websocket-key']) {
      this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        this.counters.websocketAccepts++;
        this.accept(new WebSocketTransport(ws, { address: socket.remoteAddress, port: socket.remotePort }), undefined);
      });
      return;
    }
    // Raw DERP (also very old clients that said "websocket" but spoke DERP framing).
    if (req.headers['derp-fast-start'] !== '1') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'Upgrade: DERP\r\n' +
          'Connection: Upgrade\r\n' +
          `Derp-Version: ${PROTOCOL_VERSION}\r\n` +
          `Derp-Public-Key: ${hex(this.publicKey)}\r\n\r\n`,
      );
    }
    this.accept(new SocketTransport(socket), head);
  }

  private accept(t: FrameTransport, head: Uint8Array | undefined): void {
    if (this.stopped) {
      t.destroy();
      return;
    }
    this.counters.accepts++;
    const c = new ServerConn(this, t);
    this.conns.add(c);
    c.start(head);
  }

  register(c: ServerConn): void {
    const list = this.clients.get(c.keyId);
    if (list) list.push(c);
    else this.clients.set(c.keyId, [c]);
    this.counters.currentClients = this.clients.size;
  }

  unregister(c: ServerConn): void {
    this.conns.delete(c);
    if (c.preferred) this.counters.homeClients--;
    for (const src of c.sawSrc) {
      const w = this.watchers.get(src);
      if (w) {
        w.delete(c);
        if (w.size === 0) this.watchers.delete(src);
      }
    }
    if (!c.key) return;
    const list = this.clients.get(c.keyId);
    if (!list) return;
    const i = list.indexOf(c);
    if (i !== -1) list.splice(i, 1);
    if (list.length > 0) return;
    this.clients.delete(c.keyId);
    this.counters.currentClients = this.clients.size;
    // The key left the server: tell everyone it sent to, and let them forget it — so that when
    // it comes back and sends again they are watching it afresh (and its next leave is told).
    const w = this.watchers.get(c.keyId);
    this.watchers.delete(c.keyId);
    if (w) {
      for (const dst of w) {
        dst.sawSrc.delete(c.keyId);
        dst.sendPeerGone(c.key, PeerGoneReason.Disconnected);
      }
    }
  }

  watch(srcId: string, dst: ServerConn): void {
    let w = this.watchers.get(srcId);
    if (!w) this.watchers.set(srcId, (w = new Set()));
    w.add(dst);
  }

  unwatch(srcId: string, dst: ServerConn): void {
    const w = this.watchers.get(srcId);
    if (!w) return;
    w.delete(dst);
    if (w.size === 0) this.watchers.delete(srcId);
  }

  route(from: ServerConn, dst: Uint8Array, packet: Uint8Array): void {
    this.counters.packetsReceived++;
    this.counters.bytesReceived += packet.length;
    const list = this.clients.get(hex(dst));
    const to = list?.[list.length - 1];
    if (!to) {
      this.drop('unknownDest');
      from.sendPeerGone(dst, PeerGoneReason.NotHere);
      return;
    }
    to.sendPacket(from.key!, from.keyId, packet);
  }

  noteSent(bytes: number): void {
    this.counters.packetsSent++;
    this.counters.bytesSent += bytes;
  }

  drop(reason: DropReason): void {
    this.counters.packetsDropped++;
    if (reason === 'unknownDest') this.counters.droppedUnknownDest++;
    else if (reason === 'queueFull') this.counters.droppedQueueFull++;
    else if (reason === 'gone') this.counters.droppedGone++;
    else if (reason === 'rateLimited') this.counters.droppedRateLimited++;
    else this.counters.droppedWriteError++;
  }
}

/** Start a relay server: HTTP /derp (DERP and WebSocket upgrades) plus the STUN responder. */
export async function startRelayServer(opts: RelayServerOptions): Promise<RelayServer> {
  const s = new RelayServer(opts);
  await s.start();
  return s;
}

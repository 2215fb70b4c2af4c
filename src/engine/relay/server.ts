/**
 * The DERP relay server: HTTP `GET /derp` upgraded to DERP framing (raw TCP after `101`, or a
 * WebSocket), packets routed by the destination's public key, plus a STUN responder on UDP.
 *
 * Per connection: ServerKey → (ClientInfo, boxed to our key) → ServerInfo, then SendPacket
 * frames become RecvPacket frames on the destination's connection. A sender whose destination is
 * not here gets PeerGone(not-here) (rate limited); when a client leaves, every client it had sent
 * to gets PeerGone(disconnected), as Tailscale's server does. Keepalives at least every 60 s,
 * pings answered. A connection that sends a malformed or oversized frame is closed — that one
 * only. Each connection's send queue is bounded; what does not fit is dropped and counted.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import { MeshdError } from '../../errors.js';
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
  /** Diagnostic log lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface RelayServerAddress {
  readonly host: string;
  readonly httpPort: number;
  readonly stunPort: number | null;
  /** http://host:port/derp */
  readonly url: string;
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
  private readonly log: ((line: string) => void) | undefined;
  private readonly host: string;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private stun: UdpSocket | null = null;
  private readonly conns = new Set<ServerConn>();
  /** key id → connections for that key; the last one is active. */
  private readonly clients = new Map<string, ServerConn[]>();
  /** key id → connections that received packets from that key. */
  private readonly watchers = new Map<string, Set<ServerConn>>();
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
    this.log = opts.log;
    this.host = opts.host ?? '0.0.0.0';
    this.http = createServer((req, res) => this.onRequest(req, res));
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_err, socket: Socket) => socket.destroy());
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
    sock.on('error', (e) => this.logLine(`STUN socket error: ${e.message}`));
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
    return { host: this.host, httpPort: this.httpPort, stunPort: this.stunPort, url: `http://${h}:${this.httpPort}/derp` };
  }

  /** A snapshot of the counters. */
  stats(): RelayServerStats {
    return { ...this.counters, currentClients: this.clients.size };
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

  logLine(line: string): void {
    this.log?.(`relay: ${line}`);
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
    // The key left the server: tell everyone it sent to.
    const w = this.watchers.get(c.keyId);
    this.watchers.delete(c.keyId);
    if (w) for (const dst of w) dst.sendPeerGone(c.key, PeerGoneReason.Disconnected);
  }

  watch(srcId: string, dst: ServerConn): void {
    let w = this.watchers.get(srcId);
    if (!w) this.watchers.set(srcId, (w = new Set()));
    w.add(dst);
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
    else this.counters.droppedWriteError++;
  }
}

/** Start a relay server: HTTP /derp (DERP and WebSocket upgrades) plus the STUN responder. */
export async function startRelayServer(opts: RelayServerOptions): Promise<RelayServer> {
  const s = new RelayServer(opts);
  await s.start();
  return s;
}

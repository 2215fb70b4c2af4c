/**
 * Dialing a DERP relay: one connection attempt (Conn) over an HTTP upgrade (`http(s)://…/derp`,
 * raw DERP framing after `101`, the server's key in the Derp-Public-Key header) or a WebSocket
 * (`ws(s)://…/derp`, subprotocol "derp"). On success the attempt gets a FrameTransport; the
 * client (client.ts) then runs the login over it.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { MeshdError } from '../../errors.js';
import type { FrameParser } from './frames.js';
import { SocketTransport, WebSocketTransport, type FrameTransport } from './transport.js';

export class RelayClientError extends MeshdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_RELAY', message, options);
  }
}

/** One connection attempt and, after login, the live connection. */
export interface Conn {
  transport: FrameTransport | null;
  readonly parser: FrameParser;
  phase: 'dialing' | 'server-key' | 'server-info' | 'ready' | 'closed';
  serverKey: Uint8Array | null;
  headerKey: Uint8Array | null;
  abort: (() => void) | null;
}

/** Where a connection attempt goes next. */
export interface DialCallbacks {
  /** Connected: DERP frames flow over `t`, starting with `head` (bytes that came with the upgrade). */
  attach(c: Conn, t: FrameTransport, head: Uint8Array | undefined): void;
  /** The attempt failed. */
  fail(c: Conn, err: RelayClientError): void;
}

/** Start connection attempt `c` to `url`; c.abort cancels it until it is attached. */
export function dial(c: Conn, url: URL, maxFrameLength: number, cb: DialCallbacks): void {
  if (url.protocol === 'ws:' || url.protocol === 'wss:') dialWebSocket(c, url, maxFrameLength, cb);
  else dialUpgrade(c, url, cb);
}

function dialUpgrade(c: Conn, u: URL, cb: DialCallbacks): void {
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)({
    host: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
    port: u.port || (u.protocol === 'https:' ? 443 : 80),
    path: `${u.pathname}${u.search}`,
    method: 'GET',
    headers: { Upgrade: 'DERP', Connection: 'Upgrade' },
  });
  c.abort = () => req.destroy();
  req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    c.abort = null;
    if (c.phase === 'closed') {
      socket.destroy();
      return;
    }
    if (res.statusCode !== 101) {
      socket.destroy();
      cb.fail(c, new RelayClientError(`relay answered HTTP ${res.statusCode} to the upgrade`));
      return;
    }
    const hk = res.headers['derp-public-key'];
    if (typeof hk === 'string') {
      if (!/^[0-9a-fA-F]{64}$/.test(hk)) {
        socket.destroy();
        cb.fail(c, new RelayClientError('relay sent a malformed Derp-Public-Key header'));
        return;
      }
      c.headerKey = new Uint8Array(Buffer.from(hk, 'hex'));
    }
    cb.attach(c, new SocketTransport(socket), head);
  });
  req.on('response', (res: IncomingMessage) => {
    res.resume();
    cb.fail(c, new RelayClientError(`relay answered HTTP ${res.statusCode} instead of upgrading`));
  });
  req.on('error', (e) => cb.fail(c, new RelayClientError(`cannot reach relay ${u.host}: ${e.message}`, { cause: e })));
  req.end();
}

function dialWebSocket(c: Conn, url: URL, maxFrameLength: number, cb: DialCallbacks): void {
  const ws = new WebSocket(url, ['derp'], {
    perMessageDeflate: false,
    maxPayload: maxFrameLength * 2 + 64,
  });
  c.abort = () => ws.terminate();
  ws.on('upgrade', (res: IncomingMessage) => {
    const hk = res.headers['derp-public-key'];
    if (typeof hk === 'string' && /^[0-9a-fA-F]{64}$/.test(hk)) c.headerKey = new Uint8Array(Buffer.from(hk, 'hex'));
  });
  ws.on('open', () => {
    c.abort = null;
    if (c.phase === 'closed') {
      ws.terminate();
      return;
    }
    const s = (ws as unknown as { _socket?: Socket })._socket;
    cb.attach(c, new WebSocketTransport(ws, { address: s?.remoteAddress, port: s?.remotePort }), undefined);
  });
  ws.on('error', (e) => {
    if (c.transport === null) cb.fail(c, new RelayClientError(`cannot reach relay ${url.host}: ${e.message}`, { cause: e }));
  });
  ws.on('unexpected-response', (_req, res: IncomingMessage) => {
    res.resume();
    ws.terminate();
    cb.fail(c, new RelayClientError(`relay answered HTTP ${res.statusCode} to the WebSocket upgrade`));
  });
}

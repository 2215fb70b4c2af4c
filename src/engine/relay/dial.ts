/**
 * Dialing a DERP relay: one connection attempt (Conn) over an HTTP upgrade (`http(s)://…/derp`,
 * raw DERP framing after `101`, the server's key in the Derp-Public-Key header) or a WebSocket
 * (`ws(s)://…/derp`, subprotocol "derp"). On success the attempt gets a FrameTransport; the
 * client (client.ts) then runs the login over it.
 *
 * TLS: with a pinned fingerprint (tls-cert.ts: SHA-256 of the certificate's public key, from
 * the relay record) the certificate chain and name are not checked — the relay's certificate is
 * usually self-signed — but the public key of the certificate the relay presented must hash to
 * the pin, checked before any DERP byte is read. Without a pin, normal CA and name verification.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { WebSocket } from 'ws';
import { MeshdError } from '../../errors.js';
import type { FrameParser } from './frames.js';
import { spkiFingerprint } from './tls-cert.js';
import { SocketTransport, WebSocketTransport, type FrameTransport } from './transport.js';

export class RelayClientError extends MeshdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_RELAY', message, options);
  }
}

/** The relay's TLS certificate did not match the pin from its relay record. */
export class RelayPinError extends RelayClientError {
  readonly expected: string;
  readonly presented: string | null;
  constructor(expected: string, presented: string | null) {
    super(
      presented === null
        ? `relay certificate refused: no certificate to compare with the pinned fingerprint ${expected}`
        : `relay certificate refused: its key fingerprint ${presented} is not the pinned ${expected}`,
    );
    this.expected = expected;
    this.presented = presented;
  }
}

export interface DialOptions {
  readonly maxFrameLength: number;
  /** Pinned SPKI fingerprint (base64url SHA-256) for https/wss; replaces CA verification. */
  readonly fingerprint?: string;
}

/** The pin of the certificate a TLS socket's peer presented, or null. */
function presentedFingerprint(socket: Socket | undefined): string | null {
  const tls = socket as TLSSocket | undefined;
  if (!tls || typeof tls.getPeerCertificate !== 'function') return null;
  const cert = tls.getPeerCertificate();
  if (!cert || !cert.raw) return null;
  try {
    return spkiFingerprint(new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return null;
  }
}

/** null when the socket passes the pin (or there is none), else the error to fail with. */
function checkPin(socket: Socket | undefined, url: URL, fingerprint: string | undefined): RelayClientError | null {
  if (fingerprint === undefined || (url.protocol !== 'https:' && url.protocol !== 'wss:')) return null;
  const got = presentedFingerprint(socket);
  return got === fingerprint ? null : new RelayPinError(fingerprint, got);
}

/** TLS options for a connection: pinned (no CA check, the pin is checked after the handshake) or default. */
function tlsOptions(url: URL, fingerprint: string | undefined): { rejectUnauthorized?: boolean } {
  if (url.protocol !== 'https:' && url.protocol !== 'wss:') return {};
  return fingerprint === undefined ? {} : { rejectUnauthorized: false };
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
export function dial(c: Conn, url: URL, opts: DialOptions, cb: DialCallbacks): void {
  if (url.protocol === 'ws:' || url.protocol === 'wss:') dialWebSocket(c, url, opts, cb);
  else dialUpgrade(c, url, opts, cb);
}

function dialUpgrade(c: Conn, u: URL, opts: DialOptions, cb: DialCallbacks): void {
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)({
    host: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
    port: u.port || (u.protocol === 'https:' ? 443 : 80),
    path: `${u.pathname}${u.search}`,
    method: 'GET',
    headers: { Upgrade: 'DERP', Connection: 'Upgrade' },
    // No shared agent: no TLS session reuse, so every connection shows its certificate.
    agent: false,
    ...tlsOptions(u, opts.fingerprint),
  });
  c.abort = () => req.destroy();
  req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    c.abort = null;
    if (c.phase === 'closed') {
      socket.destroy();
      return;
    }
    const pinErr = checkPin(socket, u, opts.fingerprint);
    if (pinErr) {
      socket.destroy();
      cb.fail(c, pinErr);
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
    cb.fail(c, checkPin(res.socket, u, opts.fingerprint) ?? new RelayClientError(`relay answered HTTP ${res.statusCode} instead of upgrading`));
  });
  req.on('error', (e) => cb.fail(c, new RelayClientError(`cannot reach relay ${u.host}: ${e.message}`, { cause: e })));
  req.end();
}

function dialWebSocket(c: Conn, url: URL, opts: DialOptions, cb: DialCallbacks): void {
  const ws = new WebSocket(url, ['derp'], {
    perMessageDeflate: false,
    maxPayload: opts.maxFrameLength * 2 + 64,
    ...tlsOptions(url, opts.fingerprint),
  });
  c.abort = () => ws.terminate();
  let pinErr: RelayClientError | null = null;
  ws.on('upgrade', (res: IncomingMessage) => {
    pinErr = checkPin(res.socket, url, opts.fingerprint);
    if (pinErr) {
      const err = pinErr;
      ws.terminate();
      cb.fail(c, err);
      return;
    }
    const hk = res.headers['derp-public-key'];
    if (typeof hk === 'string' && /^[0-9a-fA-F]{64}$/.test(hk)) c.headerKey = new Uint8Array(Buffer.from(hk, 'hex'));
  });
  ws.on('open', () => {
    c.abort = null;
    if (c.phase === 'closed' || pinErr) {
      ws.terminate();
      return;
    }
    const s = (ws as unknown as { _socket?: Socket })._socket;
    cb.attach(c, new WebSocketTransport(ws, { address: s?.remoteAddress, port: s?.remotePort }), undefined);
  });
  ws.on('error', (e) => {
    if (c.transport === null && !pinErr) cb.fail(c, new RelayClientError(`cannot reach relay ${url.host}: ${e.message}`, { cause: e }));
  });
  ws.on('unexpected-response', (_req, res: IncomingMessage) => {
    res.resume();
    ws.terminate();
    cb.fail(c, checkPin(res.socket, url, opts.fingerprint) ?? new RelayClientError(`relay answered HTTP ${res.statusCode} to the WebSocket upgrade`));
  });
}

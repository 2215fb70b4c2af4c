/**
 * The dashboard's HTTP listener (`meshd ui`): on 127.0.0.1 only, on a random port, started by
 * the daemon when first asked. It serves the page's static files (src/ui, shipped as they are)
 * and, to a browser holding a session (ui-auth.ts), the view as JSON (`GET /api/state`), live
 * updates as server-sent events (`GET /api/events`) and the owner's actions (`POST /api/action`).
 *
 * Updates are computed once per tick for every open event stream, and sent only when the view
 * changed; no stream open, no work.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshdError } from '../errors.js';
import type { Logger } from './log.js';
import { cookieValue, refuseRequest, sessionCookieName, UiAuth } from './ui-auth.js';

/** The page's files, as they are in the source tree (no build step). */
export const UI_ASSETS_DIR = fileURLToPath(new URL('../../../src/ui/', import.meta.url));
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/graph.js': { file: 'graph.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** How often the view is recomputed while an event stream is open. */
export const UI_TICK_MS = 500;
/** A comment line this often keeps idle streams (and proxies) from timing out. */
const KEEPALIVE_MS = 15_000;
const MAX_STREAMS = 16;
/** A stream with this much not yet taken by its reader is dropped. */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024;
const MAX_BODY = 4096;

export type UiActionKind = 'approve' | 'remove' | 'revoke-invite';
const ACTIONS: ReadonlySet<string> = new Set<UiActionKind>(['approve', 'remove', 'revoke-invite']);

export interface UiBackend {
  /** The view now (called once per tick while someone watches). */
  view(): Promise<unknown> | unknown;
  /** An owner action, through the daemon's own handlers. */
  action(kind: UiActionKind, id: string): Promise<unknown>;
}

export interface UiServer {
  readonly port: number;
  /** A fresh one-time link for `meshd ui`. */
  link(): string;
  close(): Promise<void>;
}

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

function readAssets(dir: string): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [path, a] of Object.entries(ASSETS)) {
    try {
      out.set(path, { body: readFileSync(join(dir, a.file)), type: a.type });
    } catch (e) {
      throw new MeshdError('E_UI', `the dashboard's file ${a.file} is missing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
        hint: 'the installation is incomplete: reinstall meshd (its src/ui folder ships with it)',
      });
    }
  }
  return out;
}

export async function startUiServer(opts: { backend: UiBackend; log: Logger; assetsDir?: string; tickMs?: number }): Promise<UiServer> {
  const { backend, log } = opts;
  const assets = readAssets(opts.assetsDir ?? UI_ASSETS_DIR);
  const auth = new UiAuth();
  const streams = new Set<{ res: ServerResponse; last: string }>();
  let port = 0;
  let ticker: NodeJS.Timeout | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  let ticking = false;

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string) => send(res, status, { error: { code, message } });

  const viewText = async (): Promise<string> => JSON.stringify(await backend.view());

  const tick = async () => {
    if (ticking || streams.size === 0) return;
    ticking = true;
    try {
      const text = await viewText();
      for (const s of streams) {
        if (s.last === text) continue;
        if (s.res.writableLength > MAX_UNSENT_BYTES) {
          // a page that stopped reading: drop it rather than buffer for it (it reconnects)
          log.warn('ui.stream-stalled', { unsentBytes: s.res.writableLength });
          streams.delete(s);
          s.res.destroy();
          continue;
        }
        s.last = text;
        s.res.write(`event: state\ndata: ${text}\n\n`);
      }
    } catch (e) {
      log.warn('ui.view-failed', { error: (e as Error).message });
    } finally {
      ticking = false;
    }
  };
  const startTicking = () => {
    ticker ??= setInterval(() => void tick(), opts.tickMs ?? UI_TICK_MS);
    keepalive ??= setInterval(() => {
      for (const s of streams) s.res.write(': keepalive\n\n');
    }, KEEPALIVE_MS);
  };
  const stopTicking = () => {
    clearInterval(ticker);
    clearInterval(keepalive);
    ticker = undefined;
    keepalive = undefined;
  };

  const readBody = (req: IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          reject(new MeshdError('E_USAGE', 'request body too large'));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => {
        try {
          resolve(size === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new MeshdError('E_USAGE', 'body is not JSON'));
        }
      });
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const refused = refuseRequest(port, method, { host: req.headers.host, origin: req.headers.origin, 'sec-fetch-site': req.headers['sec-fetch-site'] });
    if (refused) return fail(res, 403, 'E_FORBIDDEN', refused);

    const asset = assets.get(path);
    if (asset && (method === 'GET' || method === 'HEAD')) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'content-length': asset.body.length });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    const cookie = sessionCookieName(port);

    if (path === '/api/login' && method === 'POST') {
      const body = (await readBody(req)) as { code?: unknown } | undefined;
      const t = auth.exchange(body?.code);
      if (t === null) {
        log.warn('ui.login-refused', {});
        return fail(res, 401, 'E_UNAUTHORIZED', 'this link was already used or has expired: run `meshd ui` again for a new one');
      }
      log.info('ui.login', {});
      return send(res, 200, { ok: true }, { 'set-cookie': `${cookie}=${t}; HttpOnly; SameSite=Strict; Path=/` });
    }
    if (!path.startsWith('/api/')) return fail(res, 404, 'E_NOT_FOUND', `no page ${path}`);
    if (!auth.check(cookieValue(req.headers.cookie, cookie))) return fail(res, 401, 'E_UNAUTHORIZED', 'no dashboard session: run `meshd ui` for a new link');

    if (path === '/api/state' && method === 'GET') {
      const text = await viewText();
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (path === '/api/events' && method === 'GET') {
      if (streams.size >= MAX_STREAMS) return fail(res, 503, 'E_BUSY', 'too many dashboards open');
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      const s = { res, last: await viewText() };
      res.write(`retry: 1000\nevent: state\ndata: ${s.last}\n\n`);
      streams.add(s);
      startTicking();
      req.on('close', () => {
        streams.delete(s);
        if (streams.size === 0) stopTicking();
      });
      return;
    }
    if (path === '/api/action' && method === 'POST') {
      const body = (await readBody(req)) as { kind?: unknown; id?: unknown } | undefined;
      const kind = body?.kind;
      const id = body?.id;
      if (typeof kind !== 'string' || !ACTIONS.has(kind) || typeof id !== 'string' || id.length === 0 || id.length > 2000) {
        return fail(res, 400, 'E_USAGE', 'expected {"kind": "approve"|"remove"|"revoke-invite", "id": DID or invite id}');
      }
      log.info('ui.action', { kind, id });
      try {
        const result = await backend.action(kind as UiActionKind, id);
        void tick();
        return send(res, 200, { ok: true, result });
      } catch (e) {
        const code = e instanceof MeshdError ? e.code : 'E_DAEMON';
        log.warn('ui.action-failed', { kind, id, code, error: (e as Error).message });
        return send(res, e instanceof MeshdError ? 400 : 500, { error: { code, message: (e as Error).message, hint: (e as MeshdError).hint } });
      }
    }
    return fail(res, 404, 'E_NOT_FOUND', `no API ${method} ${path}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      const status = e instanceof MeshdError ? 400 : 500;
      fail(res, status, e instanceof MeshdError ? e.code : 'E_DAEMON', (e as Error).message);
    });
  });
  server.maxConnections = 64;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // loopback only: never the mesh, never the LAN
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  log.info('ui.serving', { url: `http://127.0.0.1:${port}/` });

  return {
    port,
    link: () => `http://127.0.0.1:${port}/#code=${auth.issueCode()}`,
    close: () =>
      new Promise<void>((resolve) => {
        stopTicking();
        for (const s of streams) s.res.end();
        streams.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

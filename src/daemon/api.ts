/**
 * The daemon's control socket: HTTP+JSON over a Unix socket at <home>/meshd.sock (mode 0600,
 * inside the 0700 home). Used by `meshd status`, `meshd peer list` and `meshd down`.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorCodeOr, MeshdError, UsageError } from '../errors.js';

export function socketPath(home: string): string {
  return join(home, 'meshd.sock');
}

export type Handler = (body: unknown) => Promise<unknown> | unknown;

/** A handler's reply that is not JSON (e.g. `GET /metrics`): sent as it is. */
export class RawResponse {
  constructor(
    readonly contentType: string,
    readonly body: string,
  ) {}
}

export interface ApiServer {
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

/** Serve `routes` ("GET /v0/status" → handler) on the home's control socket. */
export async function startApiServer(home: string, routes: Record<string, Handler>): Promise<ApiServer> {
  const path = socketPath(home);
  rmSync(path, { force: true }); // a socket left by a crashed daemon (the lock says we own the home)
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const key = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    const handler = routes[key];
    const send = (status: number, value: unknown) => {
      const raw = value instanceof RawResponse;
      const body = raw ? value.body : JSON.stringify(value);
      res.writeHead(status, { 'content-type': raw ? value.contentType : 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (!handler) return send(404, { error: { code: 'E_NOT_FOUND', message: `no route ${key}` } });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let body: unknown = undefined;
      try {
        if (size > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(400, { error: { code: 'E_USAGE', message: 'body is not JSON' } });
      }
      Promise.resolve()
        .then(() => handler(body))
        .then(
          (v) => send(200, v ?? {}),
          (e: unknown) =>
            send(e instanceof MeshdError ? 400 : 500, {
              error: { code: e instanceof MeshdError ? e.code : 'E_DAEMON', message: (e as Error).message, hint: (e as MeshdError).hint },
            }),
        );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        rmSync(path, { force: true });
      }),
  };
}

/** Call the running daemon. Throws E_NO_DAEMON when none answers. */
export function callDaemon<T = unknown>(home: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = request(
      { socketPath: socketPath(home), agent: false, method, path, headers: payload ? { 'content-type': 'application/json' } : {}, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let v: unknown;
          try {
            v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new MeshdError('E_DAEMON', 'the daemon sent an unreadable answer'));
          }
          // an error is an object; `GET /v0/status` of a daemon that failed to start has a string
          // `error` field, which is its answer, not a failed call
          const field = (v as { error?: unknown }).error;
          const err = typeof field === 'object' && field !== null ? (field as { code?: string; message?: string; hint?: string }) : undefined;
          if (res.statusCode !== 200 || err) {
            const code = errorCodeOr(err?.code, 'E_DAEMON');
            const message = err?.message ?? `daemon answered ${res.statusCode}`;
            const opts = err?.hint ? { hint: err.hint } : undefined;
            return reject(code === 'E_USAGE' ? new UsageError(message, opts) : new MeshdError(code, message, opts));
          }
          resolve(v as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new MeshdError('E_TIMEOUT', `the daemon did not answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof MeshdError) return reject(e);
      // no socket, nobody listening, or the daemon went away mid-call (it failed or stopped)
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EPIPE') {
        return reject(new MeshdError('E_NO_DAEMON', 'meshd is not running', { hint: 'start it with `meshd up`' }));
      }
      reject(new MeshdError('E_DAEMON', `cannot reach the daemon: ${e.message}`));
    });
    if (payload) req.write(payload);
    req.end();
  });
}

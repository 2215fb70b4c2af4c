/**
 * Entry point of the embedded DWN child process (started by `startDwnServer`, never imported).
 *
 * It runs @web5/dwn-server configured through its environment (DS_PORT, DWN_STORAGE_*). The
 * server calls `server.listen(port)` without an address, which listens on every interface and
 * cannot be configured; this process is the server's alone, so the one HTTP server it creates is
 * bound to MESHD_DWN_HOST (default 127.0.0.1) by wrapping `http.Server.prototype.listen` here.
 *
 * Readiness is reported to the parent over the IPC channel: `{ type: 'ready', port, address }`
 * or `{ type: 'error', message }`. When the parent goes away the channel closes and the server
 * stops, so a crashed parent never leaves a server behind.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const host = process.env.MESHD_DWN_HOST && process.env.MESHD_DWN_HOST.length > 0 ? process.env.MESHD_DWN_HOST : '127.0.0.1';

type ListenFn = (...args: unknown[]) => http.Server;
const originalListen = http.Server.prototype.listen as unknown as ListenFn;
let bound: http.Server | undefined;
(http.Server.prototype as unknown as { listen: ListenFn }).listen = function (this: http.Server, ...args: unknown[]) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    bound = this as http.Server;
    this.once('error', (e: Error) => fail(`cannot listen on ${host}:${String(args[0])}: ${e.message}`));
    return originalListen.call(this, args[0], host, ...args.slice(1));
  }
  return originalListen.apply(this, args);
};

function send(msg: Record<string, unknown>): void {
  if (process.send && process.connected) process.send(msg);
}

function fail(message: string): never {
  send({ type: 'error', message });
  process.stderr.write(`meshd dwn: ${message}\n`);
  process.exit(1);
}

process.on('disconnect', () => {
  // The parent is gone: stop with it.
  process.kill(process.pid, 'SIGTERM');
});

try {
  const { DwnServer } = await import('@web5/dwn-server');
  const server = new DwnServer();
  // Registered before the server's own shutdown handlers (set in start()), so they run first:
  // open WebSockets would otherwise hold the server's graceful shutdown forever.
  const dropConnections = () => {
    for (const c of server.wsServer?.clients ?? []) c.terminate();
    bound?.closeIdleConnections();
  };
  process.on('SIGTERM', dropConnections);
  process.on('SIGINT', dropConnections);
  await server.start();
  const addr = (bound ?? server.httpServer).address() as AddressInfo | null;
  if (!addr || typeof addr !== 'object') fail('server did not report a listening address');
  send({ type: 'ready', port: addr.port, address: addr.address });
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}

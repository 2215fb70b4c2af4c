/**
 * Entry point of the embedded DWN child process (started by `startDwnServer`, never imported).
 *
 * It runs @web5/dwn-server configured through its environment (DS_PORT, DWN_STORAGE_*). The
 * server calls `server.listen(port)` without an address, which listens on every interface and
 * cannot be configured; this process is the server's alone, so the one HTTP server it creates is
 * bound to MESHD_DWN_HOST (default 127.0.0.1) by wrapping `http.Server.prototype.listen` here.
 *
 * On PostgreSQL the server's tables declare DID columns as varchar(100), shorter than an Ed25519
 * did:jwk (114 characters; SQLite does not enforce the length). Once the server has created its
 * tables and before it listens, those columns are widened to text (only where still varchar).
 *
 * Senders' DIDs are resolved as did:jwk only (every meshd actor's method), with no cache and no
 * outbound request. Signatures are checked with node:crypto rather than the SDK's pure-JS Ed25519 (server-ed25519.ts).
 * A RecordsWrite event carries its record's data when the data is stored inline (server-event-data.ts).
 *
 * Readiness is reported to the parent over the IPC channel: `{ type: 'ready', port, address }`
 * or `{ type: 'error', message }`. When the parent goes away the channel closes and the server
 * stops, so a crashed parent never leaves a server behind.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { useNativeEd25519 } from './server-ed25519.js';
import { useEventData } from './server-event-data.js';

const host = process.env.MESHD_DWN_HOST && process.env.MESHD_DWN_HOST.length > 0 ? process.env.MESHD_DWN_HOST : '127.0.0.1';

/** The tables and columns (holding DIDs) the server's SQL store declares varchar(100). */
const DID_COLUMNS: Record<string, readonly string[]> = {
  messageStoreMessages: ['tenant', 'author', 'recipient'],
  eventLogMessages: ['tenant', 'author', 'recipient'],
};

interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
}

/** Widen the DID columns to text where they are still varchar (PGPASSWORD comes from the environment). */
async function widenDidColumns(connectionString: string): Promise<void> {
  // the `pg` the server itself uses, resolved from the server's package
  const serverRequire = createRequire(createRequire(import.meta.url).resolve('@web5/dwn-server'));
  const pg = serverRequire('pg') as { Client: new (o: { connectionString: string }) => PgClient };
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'character varying' AND table_name = ANY($1::text[])`,
      [Object.keys(DID_COLUMNS)],
    );
    for (const [table, columns] of Object.entries(DID_COLUMNS)) {
      const narrow = columns.filter((c) => rows.some((r) => r.table_name === table && r.column_name === c));
      if (narrow.length === 0) continue;
      const alters = narrow.map((c) => `ALTER COLUMN "${c}" TYPE text`).join(', ');
      await client.query(`ALTER TABLE "${table}" ${alters}`);
    }
  } finally {
    await client.end();
  }
}

const storageUrl = process.env.DWN_STORAGE_MESSAGES ?? '';
/** Runs after the server has opened its stores, before it listens. */
const beforeListen: () => Promise<void> = storageUrl.startsWith('postgres:') ? () => widenDidColumns(storageUrl) : async () => {};

type ListenFn = (...args: unknown[]) => http.Server;
const originalListen = http.Server.prototype.listen as unknown as ListenFn;
let bound: http.Server | undefined;
(http.Server.prototype as unknown as { listen: ListenFn }).listen = function (this: http.Server, ...args: unknown[]) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    const server = this as http.Server;
    bound = server;
    // which meshd home this server is the embedded DWN of (see DwnServerOptions.instanceId)
    const instance = process.env.MESHD_DWN_INSTANCE;
    if (instance) server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.setHeader('x-meshd-dwn-instance', instance));
    server.once('error', (e: Error) => fail(`cannot listen on ${host}:${String(args[0])}: ${e.message}`));
    beforeListen().then(
      () => originalListen.call(server, args[0], host, ...args.slice(1)),
      (e: unknown) => fail(`cannot prepare the PostgreSQL tables: ${e instanceof Error ? e.message : String(e)}`),
    );
    return server;
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
  // MESHD_DWN_SDK_ED25519=1 keeps the SDK's pure-JS signature checks (for comparisons)
  if (process.env.MESHD_DWN_SDK_ED25519 !== '1') {
    const why = await useNativeEd25519();
    if (why !== null) process.stderr.write(`meshd dwn: signatures checked by the SDK's pure-JS code (${why})\n`);
  }
  // MESHD_DWN_EVENT_DATA=0 sends events without their records' data (subscribers read each one)
  if (process.env.MESHD_DWN_EVENT_DATA !== '0') {
    const why = await useEventData();
    if (why !== null) process.stderr.write(`meshd dwn: events carry no record data (${why})\n`);
  }
  const { DwnServer } = await import('@web5/dwn-server');
  const { DidJwk, DidResolverCacheNoop, UniversalResolver } = await import('@web5/dids');
  // did:jwk only, resolved from the DID itself: the SDK's default also resolves did:dht and
  // did:web (outbound requests chosen by whoever sends a message) through a LevelDB cache that
  // cost more per request than resolving a did:jwk does
  const server = new DwnServer({ didResolver: new UniversalResolver({ didResolvers: [DidJwk], cache: DidResolverCacheNoop }) });
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

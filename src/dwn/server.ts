/**
 * The embedded DWN: @web5/dwn-server run as a child process, by default over SQLite in the state
 * directory (or another SQLite file, a LevelDB directory or PostgreSQL), bound to 127.0.0.1
 * unless told otherwise. A child keeps the server's memory (~135 MB) and crashes out of the
 * caller; it stops when the caller exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshdError, UsageError } from '../errors.js';
import { ensurePrivateDir } from '../identity/state-files.js';

export const DEFAULT_DWN_PORT = 8787;
export const DEFAULT_DWN_HOST = '127.0.0.1';
/** Node's default is 16 KiB for the whole header block; DWN messages travel in a header. */
export const DWN_MAX_HTTP_HEADER_SIZE = 256 * 1024;

export interface DwnServerOptions {
  /** Directory for the server's storage unless `storage` says otherwise, and its log (created 0700). */
  dataDir: string;
  /** Where the server keeps messages, data, events and tasks. Default: SQLite in `dataDir`. */
  storage?: DwnStorage;
  /** TCP port; 0 picks a free one. Default 8787. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** File the server's own log goes to (appended). Default `<dataDir>/dwn-server.log`. */
  logFile?: string;
  /** Send the server's log to this process's stdout/stderr instead of a file. */
  inheritLogs?: boolean;
  /** dwn-server log level (trace/debug/info/warn/error). Default warn. */
  logLevel?: string;
  startTimeoutMs?: number;
  /**
   * Who this server is (e.g. which meshd home it is the embedded DWN of): every response
   * carries it in the DWN_INSTANCE_HEADER header, so another home can tell it is not its own.
   */
  instanceId?: string;
  /**
   * A RecordsWrite event carries its record's data (server-event-data.ts), so subscribers read
   * nothing. Default true; false sends events as the SDK makes them (each subscriber reads the
   * record: how any other DWN behaves).
   */
  eventData?: boolean;
}

/** The response header naming the instance (DwnServerOptions.instanceId) of a server. */
export const DWN_INSTANCE_HEADER = 'x-meshd-dwn-instance';

export interface RunningDwnServer {
  /** Base URL for clients, e.g. http://127.0.0.1:8787 */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  readonly storage: DwnStorage;
  /** Resolves with the exit code (or signal name) when the child exits. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
  stop(graceMs?: number): Promise<void>;
}

const CHILD_ENTRY = fileURLToPath(new URL('./server-child.js', import.meta.url));

/**
 * The DWN's storage backend. For PostgreSQL the password is kept apart from the URL: it reaches
 * the server as PGPASSWORD (which the `pg` driver reads), so the URL can be shown and logged.
 */
export type DwnStorage =
  | { readonly kind: 'sqlite'; readonly file: string }
  | { readonly kind: 'level'; readonly dir: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly password: string | undefined };

/** dwn-server takes sqlite/level URL paths verbatim (no percent-decoding), so only plain paths work. */
const PLAIN_PATH = /^[A-Za-z0-9/._+-]+$/;
const PG_DATABASE = /^[A-Za-z0-9_.-]+$/;
const STORAGE_HINT = 'use postgres://USER:PASSWORD@HOST:PORT/DATABASE, sqlite://DIR/FILE.db or level://DIR';

function plainPath(p: string, what: string): string {
  const abs = resolve(p);
  if (!PLAIN_PATH.test(abs)) {
    throw new UsageError(`the DWN cannot store ${what} under ${abs}`, { hint: 'use a path that has only letters, digits and / . _ + -' });
  }
  return abs;
}

/** The default storage: SQLite in the state directory, as before `--storage` existed. */
export function defaultStorage(dataDir: string): DwnStorage {
  const abs = resolve(dataDir);
  if (!PLAIN_PATH.test(abs)) {
    throw new MeshdError('E_CONFIG_INVALID', `the embedded DWN cannot store data under ${abs}`, {
      hint: 'use a state directory whose path has only letters, digits and / . _ + -',
    });
  }
  return { kind: 'sqlite', file: join(abs, 'dwn.db') };
}

/**
 * Parse a `--storage` URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (postgresql:// too),
 * sqlite://PATH (a file; relative paths are taken from the current directory) or level://PATH
 * (a directory). Throws UsageError; messages never contain the password.
 */
export function parseDwnStorage(input: string): DwnStorage {
  const scheme = /^([a-z]+):\/\//i.exec(input)?.[1]?.toLowerCase();
  if (scheme === 'sqlite' || scheme === 'level') {
    const rest = input.slice(scheme.length + 3);
    if (rest.length === 0 || rest.includes('?') || rest.includes('#')) {
      throw new UsageError(`--storage ${scheme}:// needs a path`, { hint: STORAGE_HINT });
    }
    return scheme === 'sqlite' ? { kind: 'sqlite', file: plainPath(rest, 'its SQLite file') } : { kind: 'level', dir: plainPath(rest, 'its LevelDB data') };
  }
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    const shown = scheme ? `${scheme}://…` : 'that value';
    throw new UsageError(`--storage: ${shown} is not a storage URL meshd understands`, { hint: STORAGE_HINT });
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new UsageError('--storage: the postgres:// URL does not parse', { hint: STORAGE_HINT });
  }
  let password: string | undefined;
  try {
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
  } catch {
    throw new UsageError('--storage: the password in the postgres:// URL is not valid percent-encoding', { hint: STORAGE_HINT });
  }
  url.password = '';
  const database = url.pathname.slice(1);
  if (url.hostname === '') throw new UsageError('--storage: the postgres:// URL has no host', { hint: STORAGE_HINT });
  if (url.username === '') throw new UsageError('--storage: the postgres:// URL has no user', { hint: STORAGE_HINT });
  if (!PG_DATABASE.test(database)) {
    throw new UsageError('--storage: the postgres:// URL needs a database name (letters, digits, _ . -) as its path', { hint: STORAGE_HINT });
  }
  if (url.searchParams.has('password')) {
    throw new UsageError('--storage: put the password in the URL\'s user part (or PGPASSWORD), not in ?password=', { hint: STORAGE_HINT });
  }
  if (url.hash !== '') throw new UsageError('--storage: the postgres:// URL has a #fragment', { hint: STORAGE_HINT });
  const clean = `postgres://${url.username}@${url.host}${url.pathname}${url.search}`;
  return { kind: 'postgres', url: clean, password };
}

/** The storage as a URL safe to print or log (no password). */
export function describeDwnStorage(s: DwnStorage): string {
  switch (s.kind) {
    case 'sqlite':
      return `sqlite://${s.file}`;
    case 'level':
      return `level://${s.dir}`;
    case 'postgres':
      return s.url;
  }
}

/**
 * Environment for the server: all four store URLs (DWN_STORAGE alone would also make the
 * server open a registration store there, which breaks it), and PGPASSWORD for PostgreSQL.
 */
export function storageEnv(s: DwnStorage): Record<string, string> {
  const url = describeDwnStorage(s);
  const env: Record<string, string> = {
    DWN_STORAGE_MESSAGES: url,
    DWN_STORAGE_DATA: url,
    DWN_STORAGE_EVENTS: url,
    DWN_STORAGE_RESUMABLE_TASKS: url,
  };
  if (s.kind === 'postgres' && s.password !== undefined) env.PGPASSWORD = s.password;
  return env;
}

/** Storage URLs for the four stores with the default storage in `dataDir`. */
export function storageUrls(dataDir: string): Record<string, string> {
  return storageEnv(defaultStorage(dataDir));
}

function dwnServerPackageJson(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve('@web5/dwn-server');
    const idx = main.lastIndexOf(`${'node_modules'}/@web5/dwn-server/`);
    return idx < 0 ? undefined : main.slice(0, idx) + 'node_modules/@web5/dwn-server/package.json';
  } catch {
    return undefined;
  }
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Start the embedded DWN and wait until it accepts requests. */
export async function startDwnServer(opts: DwnServerOptions): Promise<RunningDwnServer> {
  const dataDir = resolve(opts.dataDir);
  ensurePrivateDir(dataDir);
  const host = opts.host ?? DEFAULT_DWN_HOST;
  const port = opts.port ?? DEFAULT_DWN_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MeshdError('E_CONFIG_INVALID', `invalid DWN port ${port}`);
  }
  const storage = opts.storage ?? defaultStorage(dataDir);
  // A directory the user named is created if missing (0700) but otherwise left as it is.
  const storageDir = storage.kind === 'sqlite' ? dirname(storage.file) : storage.kind === 'level' ? storage.dir : undefined;
  if (storageDir !== undefined) {
    try {
      mkdirSync(storageDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new MeshdError('E_CONFIG_INVALID', `cannot create the DWN storage directory ${storageDir}: ${(e as Error).message}`, { cause: e });
    }
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...storageEnv(storage),
    DS_PORT: String(port),
    MESHD_DWN_HOST: host,
    DWN_SERVER_LOG_LEVEL: opts.logLevel ?? 'warn',
    DWN_BASE_URL: `http://${urlHost(host)}:${port}`,
    ...(opts.instanceId !== undefined ? { MESHD_DWN_INSTANCE: opts.instanceId } : {}),
    ...(opts.eventData === false ? { MESHD_DWN_EVENT_DATA: '0' } : {}),
  };
  if (opts.instanceId === undefined) delete env.MESHD_DWN_INSTANCE;
  delete env.DWN_STORAGE; // setting it alone breaks the server's registration store
  delete env.DWN_REGISTRATION_STORE_URL;
  const pkg = dwnServerPackageJson();
  if (pkg) env.DWN_SERVER_PACKAGE_JSON = pkg;

  let logFd: number | undefined;
  let stdio: ('ignore' | 'inherit' | 'ipc' | number)[];
  if (opts.inheritLogs) {
    stdio = ['ignore', 'inherit', 'inherit', 'ipc'];
  } else {
    logFd = openSync(opts.logFile ?? join(dataDir, 'dwn-server.log'), 'a', 0o600);
    stdio = ['ignore', logFd, logFd, 'ipc'];
  }
  let child: ChildProcess;
  try {
    // MESHD_DWN_CPU_PROFILE=DIR: a V8 CPU profile of the server, written to DIR when it stops
    const profile = process.env.MESHD_DWN_CPU_PROFILE;
    const profileArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
    child = spawn(process.execPath, [`--max-http-header-size=${DWN_MAX_HTTP_HEADER_SIZE}`, ...profileArgs, CHILD_ENTRY], {
      env,
      cwd: dataDir,
      stdio,
    });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }

  const exited = new Promise<number | string>((res) => {
    child.once('exit', (code, signal) => res(code ?? signal ?? -1));
  });

  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const ready = await new Promise<{ port: number; address: string }>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new MeshdError('E_TIMEOUT', `the embedded DWN did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    let lastError = '';
    child.on('message', (m: unknown) => {
      const msg = m as { type?: string; port?: number; address?: string; message?: string };
      if (msg.type === 'ready' && typeof msg.port === 'number') {
        clearTimeout(timer);
        res({ port: msg.port, address: msg.address ?? host });
      } else if (msg.type === 'error') {
        lastError = String(msg.message);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      rej(new MeshdError('E_CONFIG_INVALID', `cannot start the embedded DWN: ${e.message}`, { cause: e }));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      const where = opts.inheritLogs ? '' : ` (log: ${opts.logFile ?? join(dataDir, 'dwn-server.log')})`;
      rej(new MeshdError('E_CONFIG_INVALID', `the embedded DWN exited during start-up (${code})${lastError ? `: ${lastError}` : ''}${where}`));
    });
  });

  const url = `http://${urlHost(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host)}:${ready.port}`;
  let stopping: Promise<void> | undefined;
  return {
    url,
    host,
    port: ready.port,
    pid: child.pid ?? -1,
    dataDir,
    storage,
    exited,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/**
 * The embedded DWN (spec 5.7): @web5/dwn-server run as a child process over SQLite in the state
 * directory, bound to 127.0.0.1 unless told otherwise. A child keeps the server's memory
 * (~135 MB) and crashes out of the caller; it stops when the caller exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshdError } from '../errors.js';
import { ensurePrivateDir } from '../identity/state-files.js';

export const DEFAULT_DWN_PORT = 8787;
export const DEFAULT_DWN_HOST = '127.0.0.1';
/** Node's default is 16 KiB for the whole header block; DWN messages travel in a header. */
export const DWN_MAX_HTTP_HEADER_SIZE = 256 * 1024;

export interface DwnServerOptions {
  /** Directory for the server's storage (created 0700). */
  dataDir: string;
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
}

export interface RunningDwnServer {
  /** Base URL for clients, e.g. http://127.0.0.1:8787 */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  /** Resolves with the exit code (or signal name) when the child exits. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
  stop(graceMs?: number): Promise<void>;
}

const CHILD_ENTRY = fileURLToPath(new URL('./server-child.js', import.meta.url));

/** Storage URLs for the four stores; dwn-server takes the URL path verbatim (no decoding). */
export function storageUrls(dataDir: string): Record<string, string> {
  const abs = resolve(dataDir);
  if (!/^[A-Za-z0-9/._+-]+$/.test(abs)) {
    throw new MeshdError('E_CONFIG_INVALID', `the embedded DWN cannot store data under ${abs}`, {
      hint: 'use a state directory whose path has only letters, digits and / . _ + -',
    });
  }
  const db = `sqlite://${join(abs, 'dwn.db')}`;
  return {
    DWN_STORAGE_MESSAGES: db,
    DWN_STORAGE_DATA: db,
    DWN_STORAGE_EVENTS: db,
    DWN_STORAGE_RESUMABLE_TASKS: db,
  };
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
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...storageUrls(dataDir),
    DS_PORT: String(port),
    MESHD_DWN_HOST: host,
    DWN_SERVER_LOG_LEVEL: opts.logLevel ?? 'warn',
    DWN_BASE_URL: `http://${urlHost(host)}:${port}`,
  };
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
    child = spawn(process.execPath, [`--max-http-header-size=${DWN_MAX_HTTP_HEADER_SIZE}`, CHILD_ENTRY], {
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

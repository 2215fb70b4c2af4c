/**
 * Start the daemon in the background: a detached `meshd up --foreground` child whose output
 * goes to <home>/meshd.log; the parent waits until the daemon answers on its control socket
 * with the first network map applied, or until the child exits (then its last log lines say
 * why). The child can be started early and held (spawnHeldDaemon) so that its start-up overlaps
 * with the parent's own work.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { callDaemon } from './api.js';

export interface DaemonStatusBrief {
  state: string;
  error?: string;
}

export function logPath(home: string): string {
  return join(home, 'meshd.log');
}

function tail(file: string, lines: number): string[] {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

/** Last error-ish message in the log, for a one-line failure report. */
function lastLoggedError(file: string): string | undefined {
  for (const line of tail(file, 50).reverse()) {
    try {
      const o = JSON.parse(line) as { level?: string; event?: string; error?: string; message?: string };
      if (o.level === 'error') return o.error ?? o.message ?? o.event;
    } catch {
      if (line.startsWith('meshd: ')) return line.slice(7);
    }
  }
  return undefined;
}

export interface StartOptions {
  timeoutMs?: number;
  onProgress?: (s: string) => void;
}

/**
 * A daemon process started but held: it loads its modules (half a second of the start-up)
 * while the caller still creates or joins the network, then waits for `release` — or exits
 * without touching anything on `abort`, or when the caller goes away first.
 */
export interface HeldDaemon {
  readonly pid: number;
  /** Let it start; resolves once it runs with the first network map applied. */
  release(opts?: StartOptions): Promise<DaemonStatusBrief>;
  abort(): void;
}

/** The message a held daemon waits for (anything else, or a closed channel, means abort). */
export const RELEASE_MESSAGE = 'meshd:release';

/**
 * How the long-running daemon's Node is started, for a small resident set (it idles most of the
 * time, and a device may run it next to everything else): glibc keeps at most two malloc arenas
 * (one per thread otherwise, each holding freed memory), V8 runs two platform worker threads
 * (not one per core) and keeps its young generation small (the data plane allocates little per
 * packet). An explicit MALLOC_ARENA_MAX in the environment wins.
 */
export const DAEMON_NODE_ARGS = ['--max-semi-space-size=2', '--v8-pool-size=2'];
export const DAEMON_ENV = { MALLOC_ARENA_MAX: '2' };

/** Spawn a detached `meshd up --foreground` (with `foregroundArgs`) that waits to be released. */
export function spawnHeldDaemon(home: string, foregroundArgs: string[]): HeldDaemon {
  const bin = new URL('../../../bin/meshd.js', import.meta.url).pathname;
  const log = logPath(home);
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, bin, ...foregroundArgs], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...DAEMON_ENV, ...process.env, MESHD_BACKGROUND: '1' },
  });
  closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? 1;
  });
  child.on('error', () => undefined); // reported through `exited`
  const letGo = (message: string): Promise<void> =>
    new Promise((resolve) => {
      const done = () => {
        if (child.connected) child.disconnect();
        child.unref();
        resolve();
      };
      if (!child.connected) return done();
      child.send(message, done);
    });
  return {
    pid: child.pid ?? -1,
    abort: () => void letGo('meshd:abort'),
    async release(opts: StartOptions = {}) {
      await letGo(RELEASE_MESSAGE);
      const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
      let lastState = '';
      while (Date.now() < deadline) {
        if (exited !== null) {
          const why = lastLoggedError(log) ?? `the daemon exited with code ${exited}`;
          throw new MeshdError('E_DAEMON', why, { hint: `see ${log}` });
        }
        try {
          const s = await callDaemon<DaemonStatusBrief>(home, 'GET', '/v0/status', undefined, 2000);
          if (s.state !== lastState) {
            lastState = s.state;
            opts.onProgress?.(`daemon: ${s.state}`);
          }
          if (s.state === 'running') return s;
          if (s.state === 'failed') throw new MeshdError('E_DAEMON', s.error ?? 'the daemon failed to start', { hint: `see ${log}` });
        } catch (e) {
          if (e instanceof MeshdError && e.code !== 'E_NO_DAEMON' && e.code !== 'E_TIMEOUT') throw e;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new MeshdError('E_TIMEOUT', 'the daemon did not become ready in time', { hint: `see ${log}` });
    },
  };
}

/**
 * In a daemon started by spawnHeldDaemon: wait until released. Resolves true to go on, false
 * to exit quietly (aborted, or the starting command went away). Without a parent channel (a
 * `meshd up --foreground` from a shell, or from a program of its own) there is nothing to wait
 * for.
 */
export function waitForRelease(): Promise<boolean> {
  if (process.env.MESHD_BACKGROUND !== '1' || !process.send || !process.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      process.off('disconnect', onDisconnect);
      resolve(m === RELEASE_MESSAGE);
    };
    const onDisconnect = () => {
      process.off('message', onMessage);
      resolve(false);
    };
    process.once('message', onMessage);
    process.once('disconnect', onDisconnect);
  });
}

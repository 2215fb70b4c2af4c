/**
 * Start the daemon in the background: a detached `meshd up --foreground` child whose output
 * goes to <home>/meshd.log; the parent waits until the daemon answers on its control socket
 * with the first network map applied, or until the child exits (then its last log lines say
 * why).
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

export async function startInBackground(
  home: string,
  foregroundArgs: string[],
  opts: { timeoutMs?: number; onProgress?: (s: string) => void } = {},
): Promise<DaemonStatusBrief> {
  const bin = new URL('../../../bin/meshd.js', import.meta.url).pathname;
  const log = logPath(home);
  const fd = openSync(log, 'a', 0o600);
  const child = spawn(process.execPath, [bin, ...foregroundArgs], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, MESHD_BACKGROUND: '1' },
  });
  closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? 1;
  });
  child.unref();
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
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MeshdError('E_TIMEOUT', 'the daemon did not become ready in time', { hint: `see ${log}` });
}

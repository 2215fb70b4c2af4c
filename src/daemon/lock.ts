/**
 * One daemon per home: a lock file holding the daemon's PID, created with O_EXCL. A lock left
 * by a daemon that died (kill -9, crash) is taken over when its PID is no longer alive.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';

export function lockPath(home: string): string {
  return join(home, 'meshd.lock');
}

/**
 * True when `pid` is a live process. A zombie (killed, not yet reaped by its parent — for a
 * detached daemon that is init, which may take a while) is dead.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return !existsSync('/proc/self/stat'); // gone meanwhile; without /proc, trust kill(0)
  }
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state !== 'Z' && state !== 'X';
}

/** The PID of the running daemon for this home, or null. */
export function runningDaemonPid(home: string): number | null {
  let text: string;
  try {
    text = readFileSync(lockPath(home), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return processAlive(pid) ? pid : null;
}

export interface DaemonLock {
  readonly path: string;
  release(): void;
}

export function acquireDaemonLock(home: string): DaemonLock {
  const path = lockPath(home);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
          } catch {
            // already gone
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MeshdError('E_DAEMON', `cannot create lock file ${path} (${(e as NodeJS.ErrnoException).code})`);
      }
      const pid = runningDaemonPid(home);
      if (pid !== null) {
        throw new MeshdError('E_DAEMON_RUNNING', `meshd is already running for ${home} (pid ${pid})`, {
          hint: 'use `meshd status`, or `meshd down` to stop it',
        });
      }
      rmSync(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new MeshdError('E_DAEMON', `cannot take the lock file ${path}`);
}

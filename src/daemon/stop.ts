/** Stopping this home's running daemon from a command (`meshd down`, `meshd network leave`). */
import { MeshdError } from '../errors.js';
import { callDaemon } from './api.js';
import { processAlive, runningDaemonPid } from './lock.js';

/**
 * Ask the daemon to stop (by its socket, else SIGTERM) and wait until both its lock and its
 * process are gone; resolves with its pid, or null when none was running.
 */
export async function stopRunningDaemon(home: string, timeoutMs = 15_000): Promise<number | null> {
  const pid = runningDaemonPid(home);
  if (pid === null) return null;
  try {
    await callDaemon(home, 'POST', '/v0/shutdown');
  } catch (e) {
    if (!(e instanceof MeshdError) || e.code !== 'E_NO_DAEMON') throw e;
    process.kill(pid, 'SIGTERM'); // socket gone but process alive: ask it the other way
  }
  const deadline = Date.now() + timeoutMs;
  // the lock goes first, then the process exits: wait for both, so nothing of it is left
  while (runningDaemonPid(home) !== null || processAlive(pid)) {
    if (Date.now() > deadline) throw new MeshdError('E_TIMEOUT', `meshd (pid ${pid}) did not stop within ${timeoutMs / 1000} s`, { hint: `kill ${pid}` });
    await new Promise((r) => setTimeout(r, 100));
  }
  return pid;
}

/**
 * Leftovers of crashed earlier runs of THIS harness: namespaces named mdl<pid36>-…, WireGuard
 * sockets named mdw<pid36>-….sock and work directories mdl<pid36>-… whose recorded pid is no
 * longer alive. Anything else — other software's namespaces, runs still going — is never touched.
 */
import { readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from './exec.js';
import { parseLabName } from './names.js';

export const WG_SOCKET_DIR = '/var/run/wireguard';

export interface SweepReport {
  namespaces: string[];
  sockets: string[];
  workDirs: string[];
  killedPids: number[];
}

/** Names from `ip netns list` (first word of each line). */
export async function listNetns(): Promise<string[]> {
  const r = await exec(null, ['ip', 'netns', 'list'], { timeoutMs: 5000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Pids of the processes in a namespace (`ip netns pids`). */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await exec(null, ['ip', 'netns', 'pids', name], { timeoutMs: 5000 });
  if (r.code !== 0) return [];
  return parsePids(r.stdout);
}

/** Whitespace-separated decimal pids; anything else is ignored. */
export function parsePids(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((s) => /^[1-9][0-9]{0,9}$/.test(s))
    .map(Number)
    .filter((n) => n <= 0x3fffffff);
}

/** True when a process with this pid exists and has not exited (a zombie counts as exited). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // "pid (comm) S …": the state follows the last ')' (comm may hold anything).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function deadRun(name: string): boolean {
  const p = parseLabName(name);
  return p !== undefined && !pidAlive(p.pid);
}

/** Removes leftovers of dead runs of this harness; reports what it removed. */
export async function sweepLeftovers(): Promise<SweepReport> {
  const report: SweepReport = { namespaces: [], sockets: [], workDirs: [], killedPids: [] };
  for (const name of await listNetns()) {
    if (!name.startsWith('mdl') || !deadRun(name)) continue;
    for (const pid of await netnsPids(name)) {
      try {
        process.kill(pid, 'SIGKILL');
        report.killedPids.push(pid);
      } catch {
        /* gone */
      }
    }
    // Give killed processes a moment to release the namespace's devices.
    if (report.killedPids.length > 0) await new Promise((r) => setTimeout(r, 100));
    const r = await exec(null, ['ip', 'netns', 'del', name], { timeoutMs: 5000 });
    if (r.code === 0) report.namespaces.push(name);
  }
  for (const f of safeReaddir(WG_SOCKET_DIR)) {
    if (!f.startsWith('mdw') || !f.endsWith('.sock') || !deadRun(f)) continue;
    try {
      unlinkSync(join(WG_SOCKET_DIR, f));
      report.sockets.push(f);
    } catch {
      /* raced with someone else */
    }
  }
  for (const f of safeReaddir(tmpdir())) {
    if (!f.startsWith('mdl') || !deadRun(f)) continue;
    rmSync(join(tmpdir(), f), { recursive: true, force: true });
    report.workDirs.push(f);
  }
  return report;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

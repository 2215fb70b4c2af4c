/**
 * Small UDP/TCP servers and probes run inside namespaces through nettool (see nettool.ts):
 * what a server sees as the source of a packet is how the lab tells what a NAT did.
 */
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.js';
import { exec, type NsRef } from './exec.js';
import type { Netns } from './lab.js';
import type { LabProcess } from './process.js';

/** Path of the compiled nettool script (next to this module). */
export const NETTOOL_PATH = fileURLToPath(new URL('./nettool.js', import.meta.url));

export interface UdpProbeReply {
  /** Target "ip:port". */
  to: string;
  ok: boolean;
  /** The probe's own bound "ip:port". */
  local: string;
  /** The reply's bytes, when it answered. */
  reply: Buffer | undefined;
}

export interface TcpProbeResult {
  ok: boolean;
  /** What the server wrote before closing. */
  reply: string | undefined;
  error: string | undefined;
}

function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      /* not ours */
    }
  }
  return out;
}

async function nettool(ns: NsRef, args: string[], timeoutMs: number): Promise<Record<string, unknown>[]> {
  const r = await exec(ns, [process.execPath, NETTOOL_PATH, ...args], { timeoutMs: timeoutMs + 5000 });
  if (r.code !== 0) {
    throw new LabError('E_LAB', `nettool ${args[0]} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`, { stderr: r.stderr });
  }
  return jsonLines(r.stdout);
}

/**
 * Sends `payload` from one UDP socket (bound to `bind`, default any address and an ephemeral
 * port) to each target in turn, resending every 200 ms until it answers or `timeoutMs` passes.
 */
export async function udpProbe(
  ns: NsRef,
  opts: { targets: readonly string[]; bind?: string; payload?: Uint8Array; timeoutMs?: number },
): Promise<UdpProbeReply[]> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const args = ['udp-probe', '--timeout', String(timeoutMs)];
  if (opts.bind) args.push('--bind', opts.bind);
  if (opts.payload) args.push('--hex', Buffer.from(opts.payload).toString('hex'));
  for (const t of opts.targets) args.push('--to', t);
  const lines = await nettool(ns, args, timeoutMs * opts.targets.length);
  return lines.map((l) => ({
    to: String(l.to),
    ok: l.ok === true,
    local: String(l.local),
    reply: typeof l.reply === 'string' ? Buffer.from(l.reply, 'hex') : undefined,
  }));
}

/** Connects to `target` ("ip:port") and returns what the server wrote. */
export async function tcpProbe(ns: NsRef, target: string, timeoutMs = 2000): Promise<TcpProbeResult> {
  const [l] = await nettool(ns, ['tcp-probe', '--to', target, '--timeout', String(timeoutMs)], timeoutMs);
  return {
    ok: l?.ok === true,
    reply: typeof l?.reply === 'string' ? l.reply : undefined,
    error: typeof l?.error === 'string' ? l.error : l ? undefined : 'no output',
  };
}

/** TCP connection round trips to target ("ip:port"); a refused connection is an answer. */
export async function tcpPing(ns: NsRef, target: string, opts: { count?: number; timeoutMs?: number } = {}): Promise<number[]> {
  const count = opts.count ?? 1;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const lines = await nettool(ns, ['tcp-ping', '--to', target, '--count', String(count), '--timeout', String(timeoutMs)], timeoutMs * count);
  return lines.filter((l) => l.ok === true && typeof l.rttMs === 'number').map((l) => l.rttMs as number);
}

/**
 * A UDP server that answers every datagram with the sender's "ip:port" as text, and logs it
 * (see sourcesSeen). Resolves once it listens.
 */
export async function startUdpEcho(ns: Netns, bind: string): Promise<LabProcess> {
  const p = ns.node(NETTOOL_PATH, ['udp-echo', '--bind', bind], { label: 'udp-echo' });
  await p.waitFor('"event":"ready"', 10_000);
  return p;
}

/** A TCP server that writes the client's "ip:port\n" and closes. Resolves once it listens. */
export async function startTcpEcho(ns: Netns, bind: string): Promise<LabProcess> {
  const p = ns.node(NETTOOL_PATH, ['tcp-echo', '--bind', bind], { label: 'tcp-echo' });
  await p.waitFor('"event":"ready"', 10_000);
  return p;
}

/** Source addresses ("ip:port") an echo server has seen so far, in arrival order. */
export function sourcesSeen(echo: LabProcess): string[] {
  return jsonLines(echo.stdout())
    .filter((l) => (l.event === 'recv' || l.event === 'accept') && typeof l.from === 'string')
    .map((l) => l.from as string);
}

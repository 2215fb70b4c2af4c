/**
 * Reachability and round-trip time from a namespace. ICMP echo through `ping` (Debian package
 * iputils-ping) when it is installed; otherwise a TCP connection attempt to a closed port, which
 * the far kernel answers with RST — a real round trip through every hop and tunnel, with no
 * server needed on the far side.
 */
import { LabError } from './errors.js';
import { exec, onPath, type NsRef } from './exec.js';
import { tcpPing } from './probes.js';

export type PingMethod = 'icmp' | 'tcp';

export interface PingResult {
  /** At least one answer. */
  ok: boolean;
  sent: number;
  received: number;
  /** Mean round-trip time of the answers, ms. */
  rttMs: number | undefined;
  method: PingMethod;
}

export interface PingOptions {
  /** Probes to send (default 1). */
  count?: number;
  /** Wait per probe (default 2000 ms). */
  timeoutMs?: number;
  /** 'auto' (default): ICMP when `ping` exists, else TCP. */
  method?: PingMethod | 'auto';
  /** TCP port for the TCP method (default 9, discard: normally closed). */
  tcpPort?: number;
}

export interface ParsedPing {
  sent: number;
  received: number;
  rttAvgMs: number | undefined;
}

/** Parses the summary of iputils `ping` output. */
export function parsePingOutput(text: string): ParsedPing {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (!m) throw new LabError('E_LAB', 'no ping summary in output');
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+(?:\/[\d.]+)? ms/.exec(text);
  const avg = rtt ? Number(rtt[1]) : undefined;
  return { sent: Number(m[1]), received: Number(m[2]), rttAvgMs: avg !== undefined && Number.isFinite(avg) ? avg : undefined };
}

export async function ping(ns: NsRef, addr: string, opts: PingOptions = {}): Promise<PingResult> {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) throw new LabError('E_LAB', `ping: not an IPv4 address: ${addr}`);
  const count = opts.count ?? 1;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const method: PingMethod = opts.method === 'icmp' || opts.method === 'tcp' ? opts.method : onPath('ping') ? 'icmp' : 'tcp';
  if (method === 'icmp') {
    const waitS = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const r = await exec(ns, ['ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', waitS, addr], {
      timeoutMs: timeoutMs * count + 5000,
    });
    const p = parsePingOutput(r.stdout);
    return { ok: p.received > 0, sent: p.sent, received: p.received, rttMs: p.rttAvgMs, method };
  }
  const rtts = await tcpPing(ns, `${addr}:${opts.tcpPort ?? 9}`, { count, timeoutMs });
  const rttMs = rtts.length > 0 ? rtts.reduce((a, b) => a + b, 0) / rtts.length : undefined;
  return { ok: rtts.length > 0, sent: count, received: rtts.length, rttMs, method };
}

/**
 * A series of ICMP echoes at a short interval (`ping -i 0.01`, root only below 0.2 s) and the
 * distribution of their round-trip times: what a benchmark reports as latency through a tunnel,
 * idle and while a bulk transfer fills it.
 */
import { LabError } from './errors.js';
import { exec, type NsRef } from './exec.js';
import { parsePingOutput } from './ping.js';

export interface RttSummary {
  sent: number;
  received: number;
  /** Round-trip times of the answers, in the order they came, ms. */
  rttsMs: number[];
  /** Nearest-rank percentiles of rttsMs; undefined when nothing answered. */
  medianMs: number | undefined;
  p99Ms: number | undefined;
  minMs: number | undefined;
  maxMs: number | undefined;
}

/** Nearest-rank quantile (0 < q ≤ 1) of ascending `sorted`; undefined when empty. */
export function quantile(sorted: readonly number[], q: number): number | undefined {
  if (!(q > 0 && q <= 1)) throw new LabError('E_LAB', `quantile: q must be in (0, 1], got ${q}`);
  if (sorted.length === 0) return undefined;
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

const REPLY = /^\d+ bytes from [^:]+: icmp_seq=\d+ ttl=\d+ time=(\d+(?:\.\d+)?) ms$/;

/**
 * Parses iputils `ping` output with a line per answer ("64 bytes from …: icmp_seq=1 ttl=64
 * time=0.123 ms"); duplicates and other lines are skipped. E_LAB without a summary.
 */
export function parsePingSeries(text: string): RttSummary {
  const { sent, received } = parsePingOutput(text);
  const rttsMs: number[] = [];
  for (const line of text.split('\n')) {
    const m = REPLY.exec(line.trim());
    if (!m) continue;
    const v = Number(m[1]);
    if (Number.isFinite(v)) rttsMs.push(v);
  }
  if (rttsMs.length > received) throw new LabError('E_LAB', `ping output holds ${rttsMs.length} answers but its summary says ${received}`);
  const sorted = [...rttsMs].sort((a, b) => a - b);
  return {
    sent,
    received,
    rttsMs,
    medianMs: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
  };
}

export interface PingSeriesOptions {
  /** Echo requests to send. */
  count: number;
  /** Seconds between requests (default 0.01; below 0.2 needs root). */
  intervalS?: number;
  /** Seconds to wait for the last answer (default 1). */
  waitS?: number;
}

/** `ping -n -c COUNT -i INTERVAL` from `ns` to `addr`; the answers' RTT distribution. */
export async function pingSeries(ns: NsRef, addr: string, opts: PingSeriesOptions): Promise<RttSummary> {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) throw new LabError('E_LAB', `ping: not an IPv4 address: ${addr}`);
  if (!Number.isSafeInteger(opts.count) || opts.count < 1) throw new LabError('E_LAB', `ping: count must be a positive integer, got ${opts.count}`);
  const interval = opts.intervalS ?? 0.01;
  const wait = opts.waitS ?? 1;
  const r = await exec(ns, ['ping', '-n', '-c', String(opts.count), '-i', String(interval), '-W', String(wait), addr], {
    timeoutMs: Math.ceil(opts.count * interval * 1000 + wait * 1000 + 10_000),
  });
  try {
    return parsePingSeries(r.stdout);
  } catch (e) {
    throw new LabError('E_LAB', `ping ${addr} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || (e as Error).message}`, { cause: e });
  }
}

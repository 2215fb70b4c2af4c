/**
 * Throughput with iperf3 between lab namespaces. The client runs with -J and its JSON report is
 * parsed: TCP reports what the receiver got (end.sum_received), UDP the datagrams that arrived.
 */
import { LabError } from './errors.js';
import { exec, type NsRef } from './exec.js';
import type { Netns } from './lab.js';
import type { LabProcess } from './process.js';

export interface Iperf3Result {
  /** What the receiving side got, Mbit/s. */
  mbps: number;
  /** What the sender put out, Mbit/s. */
  sentMbps: number;
  /** TCP retransmissions (undefined for UDP). */
  retransmits: number | undefined;
  /** UDP: lost datagrams / total (undefined for TCP). */
  lossFraction: number | undefined;
  seconds: number;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Parses an `iperf3 -c … -J` report; E_LAB when it holds an error or no totals. */
export function parseIperf3Json(text: string): Iperf3Result {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new LabError('E_LAB', 'iperf3 printed no JSON report');
  }
  const root = obj(doc);
  if (!root) throw new LabError('E_LAB', 'iperf3 report is not an object');
  if (typeof root.error === 'string') throw new LabError('E_LAB', `iperf3: ${root.error}`);
  const end = obj(root.end);
  const sent = obj(end?.sum_sent);
  const received = obj(end?.sum_received);
  const udp = obj(end?.sum);
  if (sent && received) {
    const r = num(received.bits_per_second);
    const s = num(sent.bits_per_second);
    if (r === undefined || s === undefined) throw new LabError('E_LAB', 'iperf3 report without rates');
    return { mbps: r / 1e6, sentMbps: s / 1e6, retransmits: num(sent.retransmits), lossFraction: undefined, seconds: num(received.seconds) ?? 0 };
  }
  if (udp) {
    const bps = num(udp.bits_per_second);
    if (bps === undefined) throw new LabError('E_LAB', 'iperf3 UDP report without rate');
    const lost = num(udp.lost_packets) ?? 0;
    const total = num(udp.packets) ?? 0;
    const loss = total > 0 ? lost / total : 0;
    return { mbps: (bps * (1 - loss)) / 1e6, sentMbps: bps / 1e6, retransmits: undefined, lossFraction: loss, seconds: num(udp.seconds) ?? 0 };
  }
  throw new LabError('E_LAB', 'iperf3 report without totals');
}

export class Iperf3Server {
  private constructor(
    readonly ns: Netns,
    readonly addr: string,
    readonly port: number,
    readonly process: LabProcess,
  ) {}

  static async start(ns: Netns, opts: { addr: string; port?: number }): Promise<Iperf3Server> {
    const port = opts.port ?? 5201;
    const proc = ns.spawn(['iperf3', '-s', '-B', opts.addr, '-p', String(port), '--forceflush'], { label: 'iperf3-server' });
    await proc.waitFor('Server listening', 10_000);
    return new Iperf3Server(ns, opts.addr, port, proc);
  }

  async stop(): Promise<void> {
    await this.process.stop();
  }
}

export interface Iperf3ClientOptions {
  server: string;
  port?: number;
  /** Test length (default 3 s). */
  seconds?: number;
  /** Server sends, client receives. */
  reverse?: boolean;
  /** UDP at this rate, e.g. '500M' (TCP when absent). */
  udpBitrate?: string;
  /** Parallel streams (default 1). */
  parallel?: number;
}

/** Runs an iperf3 client in `ns` against a running server. */
export async function iperf3Client(ns: NsRef, o: Iperf3ClientOptions): Promise<Iperf3Result> {
  const seconds = o.seconds ?? 3;
  const argv = ['iperf3', '-c', o.server, '-p', String(o.port ?? 5201), '-t', String(seconds), '-J'];
  if (o.reverse) argv.push('-R');
  if (o.udpBitrate) argv.push('-u', '-b', o.udpBitrate);
  if (o.parallel && o.parallel > 1) argv.push('-P', String(o.parallel));
  const r = await exec(ns, argv, { timeoutMs: seconds * 1000 + 15_000 });
  return parseIperf3Json(r.stdout);
}

/** Starts a server in serverNs on addr, runs one client from clientNs, stops the server. */
export async function measureIperf3(
  serverNs: Netns,
  serverAddr: string,
  clientNs: NsRef,
  opts: Omit<Iperf3ClientOptions, 'server'> = {},
): Promise<Iperf3Result> {
  const srv = await Iperf3Server.start(serverNs, { addr: serverAddr, ...(opts.port === undefined ? {} : { port: opts.port }) });
  try {
    return await iperf3Client(clientNs, { ...opts, server: serverAddr });
  } finally {
    await srv.stop();
  }
}

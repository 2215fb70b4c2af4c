/**
 * Throughput with iperf3 between lab namespaces. The client runs with -J and its JSON report is
 * parsed: TCP reports what the receiver got (end.sum_received), UDP the datagrams that arrived
 * and the loss the server counted (end.sum_received since iperf3 3.10, end.sum before).
 */
import { LabError } from './errors.js';
import { exec, type NsRef } from './exec.js';
import type { Netns } from './lab.js';
import type { LabProcess } from './process.js';

export interface Iperf3Result {
  protocol: 'tcp' | 'udp';
  /** What the receiving side got, Mbit/s. */
  mbps: number;
  /** What the sender put out, Mbit/s. */
  sentMbps: number;
  /** Bytes the receiving side got. */
  bytes: number;
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

function need(o: Record<string, unknown>, key: string, what: string): number {
  const v = num(o[key]);
  if (v === undefined || v < 0) throw new LabError('E_LAB', `iperf3 report: ${what} has no ${key}`);
  return v;
}

/** 'tcp' or 'udp' from start.test_start.protocol; undefined when the report does not say. */
function protocolOf(root: Record<string, unknown>): 'tcp' | 'udp' | undefined {
  const p = obj(obj(root.start)?.test_start)?.protocol;
  if (p === 'TCP') return 'tcp';
  if (p === 'UDP') return 'udp';
  return undefined;
}

function udpResult(sent: Record<string, unknown> | undefined, received: Record<string, unknown>, what: string): Iperf3Result {
  const packets = need(received, 'packets', what);
  const lost = need(received, 'lost_packets', what);
  if (lost > packets) throw new LabError('E_LAB', `iperf3 report: ${what} lost more datagrams than were sent`);
  const loss = packets > 0 ? lost / packets : 0;
  const seconds = need(received, 'seconds', what);
  if (sent) {
    // iperf3 ≥ 3.10: sum_received is what the server got, loss included
    const bps = need(received, 'bits_per_second', what);
    const bytes = num(received.bytes) ?? (bps * seconds) / 8;
    return { protocol: 'udp', mbps: bps / 1e6, sentMbps: need(sent, 'bits_per_second', 'end.sum_sent') / 1e6, bytes, retransmits: undefined, lossFraction: loss, seconds };
  }
  // older iperf3: one `sum` with the sender's rate and the server's loss counts
  const bps = need(received, 'bits_per_second', what);
  const mbps = (bps * (1 - loss)) / 1e6;
  return { protocol: 'udp', mbps, sentMbps: bps / 1e6, bytes: (mbps * 1e6 * seconds) / 8, retransmits: undefined, lossFraction: loss, seconds };
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
  const sum = obj(end?.sum);
  const protocol = protocolOf(root) ?? (sum && 'lost_packets' in sum ? 'udp' : sent && received ? 'tcp' : undefined);
  if (protocol === 'udp') {
    if (sent && received && 'packets' in received) return udpResult(sent, received, 'end.sum_received');
    if (sum) return udpResult(undefined, sum, 'end.sum');
    throw new LabError('E_LAB', 'iperf3 UDP report without totals');
  }
  if (protocol === 'tcp' && sent && received) {
    const r = num(received.bits_per_second);
    const s = num(sent.bits_per_second);
    if (r === undefined || s === undefined) throw new LabError('E_LAB', 'iperf3 report without rates');
    const seconds = num(received.seconds) ?? 0;
    const bytes = num(received.bytes) ?? (r * seconds) / 8;
    return { protocol: 'tcp', mbps: r / 1e6, sentMbps: s / 1e6, bytes, retransmits: num(sent.retransmits), lossFraction: undefined, seconds };
  }
  throw new LabError('E_LAB', 'iperf3 report without totals');
}

/** How the server announces a data stream ("[  5] local 10.77.0.2 port 5201 connected to …"). */
const STREAM_LINE = /\] local \S+ port \d+ connected to /;
const STREAM_LINE_G = new RegExp(STREAM_LINE.source, 'g');
const LISTENING = /Server listening on \d+/;
const ACCEPTED_G = /Accepted connection from /g;

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

  /** Data streams the server has accepted so far (its "[ N] local … connected to …" lines). */
  streamsAccepted(): number {
    return this.process.output().match(STREAM_LINE_G)?.length ?? 0;
  }

  /** Resolves once the server has accepted `count` data streams in all (see streamsAccepted). */
  async waitForStreams(count: number, timeoutMs = 10_000): Promise<void> {
    if (!Number.isSafeInteger(count) || count < 1) throw new LabError('E_LAB', `waitForStreams: bad count ${count}`);
    await this.process.waitFor(new RegExp(`(?:${STREAM_LINE.source}[\\s\\S]*?){${count}}`), timeoutMs);
  }

  /**
   * Resolves once the server listens for a new test. After each test it closes its listening
   * socket and opens it again ("Server listening" once more), so a client that starts right
   * after the previous one returned can meet a reset; call this before every client.
   */
  async waitIdle(timeoutMs = 10_000): Promise<void> {
    const accepted = this.process.output().match(ACCEPTED_G)?.length ?? 0;
    await this.process.waitFor(new RegExp(`(?:${LISTENING.source}[\\s\\S]*?){${accepted + 1}}`), timeoutMs);
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
  /** TCP capped at this rate (-b, e.g. '100M'); ignored with udpBitrate. */
  tcpBitrate?: string;
  /** Parallel streams (default 1). */
  parallel?: number;
  /** UDP datagram payload in bytes (-l); iperf3's default otherwise. */
  udpLength?: number;
  /** Socket buffer size of both ends (-w, e.g. '4M'; capped by net.core.[rw]mem_max). */
  socketBuffer?: string;
}

/** Runs an iperf3 client in `ns` against a running server. */
export async function iperf3Client(ns: NsRef, o: Iperf3ClientOptions): Promise<Iperf3Result> {
  const seconds = o.seconds ?? 3;
  const argv = ['iperf3', '-c', o.server, '-p', String(o.port ?? 5201), '-t', String(seconds), '-J'];
  if (o.reverse) argv.push('-R');
  if (o.udpBitrate) argv.push('-u', '-b', o.udpBitrate);
  else if (o.tcpBitrate) argv.push('-b', o.tcpBitrate);
  if (o.udpBitrate && o.udpLength !== undefined) argv.push('-l', String(o.udpLength));
  if (o.socketBuffer !== undefined) argv.push('-w', o.socketBuffer);
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

/**
 * Measures one network path between two lab namespaces — a tunnel or a bare link — the way
 * bench/throughput.ts reports it: iperf3 TCP with 1 and with N parallel streams, iperf3 UDP at a
 * fixed rate (what was sent, what arrived, the loss), ping RTT (`ping -i 0.01`: median and p99)
 * idle on the fresh path, during one TCP stream capped at a rate every path sustains (the same
 * offered load for all: the fair comparison), during one uncapped TCP stream (each path carries
 * what it can, so a faster path queues more), and idle again after all that traffic (a JIT
 * runtime has then compiled its hot paths), and the CPU seconds the path's processes (the tunnel
 * endpoints) spent per Gbit received, read from /proc/PID/stat around each transfer.
 *
 * The iperf3 client (the sender) runs in `path.client`, the server (the receiver) in
 * `path.server`. The functions never start or stop the tunnel; whoever built the path does.
 */
import { LabError } from './errors.js';
import type { Netns } from './lab.js';
import { pingSeries, type RttSummary } from './ping-series.js';
import { clockTicksPerSecond, CpuMeter, type CpuUse, type MeteredProcess } from './proc-cpu.js';
import { iperf3Client, Iperf3Server, type Iperf3Result } from './ref-iperf3.js';

export interface PathProcess extends MeteredProcess {
  /** The sender's end of the tunnel (in path.client) or the receiver's (in path.server). */
  side: 'sender' | 'receiver';
}

export interface BenchPath {
  /** e.g. 'meshd ↔ meshd' */
  label: string;
  /** The sender: the iperf3 client and ping run here. */
  client: Netns;
  /** The receiver: the iperf3 server listens here on serverAddr, ping's target. */
  server: Netns;
  serverAddr: string;
  /** MTU of the path; UDP datagrams are sized to fit it (MTU − 28). */
  mtu: number;
  /** The processes that carry the path (tunnel endpoints); empty for a bare link. */
  processes: readonly PathProcess[];
}

export interface CpuReport {
  processes: Array<CpuUse & { side: PathProcess['side'] }>;
  /** CPU seconds of the sender's processes per Gbit received; undefined without any. */
  senderSecondsPerGbit: number | undefined;
  receiverSecondsPerGbit: number | undefined;
  /** Both sides together. */
  totalSecondsPerGbit: number | undefined;
}

export interface TcpMeasurement {
  streams: number;
  /** Received, Mbit/s. */
  mbps: number;
  sentMbps: number;
  /** Bytes received. */
  bytes: number;
  retransmits: number | undefined;
  seconds: number;
  cpu: CpuReport;
}

export interface UdpMeasurement {
  /** iperf3 -b, e.g. '1G'. */
  targetRate: string;
  /** UDP payload per datagram. */
  datagramBytes: number;
  /** iperf3's socket buffers (-w). */
  socketBuffer: string;
  /** What arrived, Mbit/s. */
  mbps: number;
  sentMbps: number;
  bytes: number;
  lossPercent: number;
  seconds: number;
  cpu: CpuReport;
}

export interface RttMeasurement {
  sent: number;
  received: number;
  lossPercent: number;
  medianMs: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  /** Under load: the rate of the TCP stream that ran meanwhile, Mbit/s. */
  loadMbps?: number;
  /** Under a capped load: the cap asked for (iperf3 -b). */
  loadRate?: string;
}

export interface PathReport {
  label: string;
  /** Seconds per transfer. */
  seconds: number;
  tcp1: TcpMeasurement;
  tcpN: TcpMeasurement;
  udp: UdpMeasurement;
  rttIdle: RttMeasurement;
  /** During one TCP stream capped at `loadRate` (the same offered load on every path). */
  rttCapped: RttMeasurement;
  /** During one uncapped TCP stream. */
  rttLoaded: RttMeasurement;
  /** Idle again, after the transfers. */
  rttIdleAfter: RttMeasurement;
}

export interface PathBenchOptions {
  /** Seconds per transfer (default 5). */
  seconds?: number;
  /** Parallel TCP streams of the second TCP test (default 4). */
  streams?: number;
  /** UDP rate, iperf3 -b syntax (default '1G'). */
  udpRate?: string;
  /** The cap of the TCP stream for the equal-load RTT, iperf3 -b syntax (default DEFAULT_LOAD_RATE). */
  loadRate?: string;
  /** Called before each step with a line to show. */
  onProgress?: (line: string) => void;
}

const PING_INTERVAL_S = 0.01;
/** Below what Debian's wireguard-go carries on one stream on a 2-core machine (≈ 200–300 Mbit/s). */
export const DEFAULT_LOAD_RATE = '100M';
const RATE = /^\d+(\.\d+)?[KMG]?$/;
/**
 * iperf3's own UDP sockets get 4 MiB buffers, so the loss counted is the path's and not the
 * iperf3 receiver falling behind on a busy machine (with the default ~200 KiB, a loaded 2-core
 * machine drops a third of 1 Gbit/s on a bare veth). The tunnels' sockets keep their own sizes.
 */
const UDP_SOCKET_BUFFER = '4M';

function perGbit(cpuSeconds: number, bytes: number): number | undefined {
  const gbit = (bytes * 8) / 1e9;
  return gbit > 0 ? cpuSeconds / gbit : undefined;
}

function cpuReport(path: BenchPath, used: CpuUse[], bytes: number): CpuReport {
  const processes = used.map((u, i) => ({ ...u, side: path.processes[i]!.side }));
  const sum = (side?: PathProcess['side']): number | undefined => {
    const mine = processes.filter((p) => side === undefined || p.side === side);
    return mine.length === 0 ? undefined : perGbit(mine.reduce((a, p) => a + p.cpuSeconds, 0), bytes);
  };
  return { processes, senderSecondsPerGbit: sum('sender'), receiverSecondsPerGbit: sum('receiver'), totalSecondsPerGbit: sum() };
}

/** Runs `fn` with the path's processes metered; the CPU report is per Gbit of `bytesOf(result)`. */
async function metered<T>(path: BenchPath, ticks: number, fn: () => Promise<T>, bytesOf: (r: T) => number): Promise<{ result: T; cpu: CpuReport }> {
  const meter = CpuMeter.start(path.processes, ticks);
  const result = await fn();
  return { result, cpu: cpuReport(path, meter.stop(), bytesOf(result)) };
}

function requireBytes(path: BenchPath, what: string, r: Iperf3Result): void {
  if (!(r.bytes > 0)) throw new LabError('E_LAB', `${path.label}: ${what} moved no data (iperf3 reported ${r.bytes} bytes received)`);
}

/** iperf3 TCP, `streams` parallel streams (-P), sender → receiver. */
export async function measureTcp(
  path: BenchPath,
  server: Iperf3Server,
  opts: { seconds: number; streams: number; ticksPerSecond?: number },
): Promise<TcpMeasurement> {
  await server.waitIdle();
  const { result: r, cpu } = await metered(
    path,
    opts.ticksPerSecond ?? clockTicksPerSecond(),
    () => iperf3Client(path.client, { server: server.addr, port: server.port, seconds: opts.seconds, parallel: opts.streams }),
    (x) => x.bytes,
  );
  requireBytes(path, `TCP ×${opts.streams}`, r);
  return { streams: opts.streams, mbps: r.mbps, sentMbps: r.sentMbps, bytes: r.bytes, retransmits: r.retransmits, seconds: r.seconds, cpu };
}

/** iperf3 UDP at `rate` (-u -b RATE) with datagrams that fit the path's MTU. */
export async function measureUdp(
  path: BenchPath,
  server: Iperf3Server,
  opts: { seconds: number; rate: string; ticksPerSecond?: number },
): Promise<UdpMeasurement> {
  if (!RATE.test(opts.rate)) throw new LabError('E_LAB', `UDP rate must look like 500M or 1G (iperf3 -b), got ${opts.rate}`);
  const datagramBytes = path.mtu - 28;
  await server.waitIdle();
  const { result: r, cpu } = await metered(
    path,
    opts.ticksPerSecond ?? clockTicksPerSecond(),
    () =>
      iperf3Client(path.client, {
        server: server.addr,
        port: server.port,
        seconds: opts.seconds,
        udpBitrate: opts.rate,
        udpLength: datagramBytes,
        socketBuffer: UDP_SOCKET_BUFFER,
      }),
    (x) => x.bytes,
  );
  requireBytes(path, `UDP at ${opts.rate}`, r);
  if (r.lossFraction === undefined) throw new LabError('E_LAB', `${path.label}: the iperf3 UDP report has no loss counts`);
  return {
    targetRate: opts.rate,
    datagramBytes,
    socketBuffer: UDP_SOCKET_BUFFER,
    mbps: r.mbps,
    sentMbps: r.sentMbps,
    bytes: r.bytes,
    lossPercent: r.lossFraction * 100,
    seconds: r.seconds,
    cpu,
  };
}

function rtt(path: BenchPath, when: string, s: RttSummary): RttMeasurement {
  if (s.medianMs === undefined || s.p99Ms === undefined || s.minMs === undefined || s.maxMs === undefined) {
    throw new LabError('E_LAB', `${path.label}: no ping answered ${when} (${s.sent} sent)`);
  }
  return {
    sent: s.sent,
    received: s.received,
    lossPercent: s.sent > 0 ? ((s.sent - s.received) / s.sent) * 100 : 0,
    medianMs: s.medianMs,
    p99Ms: s.p99Ms,
    minMs: s.minMs,
    maxMs: s.maxMs,
  };
}

/** Pings the receiver every 10 ms, `count` times, with nothing else on the path. */
export async function measureRttIdle(path: BenchPath, opts: { count: number }): Promise<RttMeasurement> {
  return rtt(path, 'while idle', await pingSeries(path.client, path.serverAddr, { count: opts.count, intervalS: PING_INTERVAL_S }));
}

/**
 * Pings the receiver every 10 ms while one iperf3 TCP stream of `seconds` runs the same way,
 * capped at `rate` (iperf3 -b) when given: the pings start once the server has accepted the
 * stream and stop ~0.5 s before it ends.
 */
export async function measureRttUnderLoad(
  path: BenchPath,
  server: Iperf3Server,
  opts: { seconds: number; rate?: string },
): Promise<RttMeasurement> {
  if (opts.rate !== undefined && !RATE.test(opts.rate)) throw new LabError('E_LAB', `load rate must look like 100M (iperf3 -b), got ${opts.rate}`);
  const count = Math.max(10, Math.floor((opts.seconds - 0.5) / PING_INTERVAL_S));
  await server.waitIdle();
  const before = server.streamsAccepted();
  const load = iperf3Client(path.client, {
    server: server.addr,
    port: server.port,
    seconds: opts.seconds,
    ...(opts.rate !== undefined ? { tcpBitrate: opts.rate } : {}),
  });
  load.catch(() => {}); // awaited below; this only keeps an early failure from being unhandled
  try {
    const started = server.waitForStreams(before + 1, 10_000);
    started.catch(() => {});
    await Promise.race([
      started,
      load.then(() => {
        throw new LabError('E_LAB', `${path.label}: the iperf3 load stream ended before the server saw it start`);
      }),
    ]);
    const s = await pingSeries(path.client, path.serverAddr, { count, intervalS: PING_INTERVAL_S });
    const r = await load;
    requireBytes(path, 'the load stream', r);
    return { ...rtt(path, 'under load', s), loadMbps: r.mbps, ...(opts.rate !== undefined ? { loadRate: opts.rate } : {}) };
  } finally {
    await load.catch(() => undefined);
  }
}

/** Everything above on one path, with its own iperf3 server (started and stopped here). */
export async function measurePath(path: BenchPath, opts: PathBenchOptions = {}): Promise<PathReport> {
  const seconds = opts.seconds ?? 5;
  if (!(seconds >= 1 && seconds <= 600)) throw new LabError('E_LAB', `seconds per transfer must be within 1…600, got ${seconds}`);
  const streams = opts.streams ?? 4;
  const udpRate = opts.udpRate ?? '1G';
  const loadRate = opts.loadRate ?? DEFAULT_LOAD_RATE;
  const step = (what: string): void => opts.onProgress?.(`${path.label}: ${what}`);
  const ticksPerSecond = clockTicksPerSecond();
  const server = await Iperf3Server.start(path.server, { addr: path.serverAddr });
  try {
    step(`ping idle (${Math.round(seconds * 100)} × 10 ms)`);
    const rttIdle = await measureRttIdle(path, { count: Math.round(seconds * 100) });
    step(`TCP ×1, ${seconds} s`);
    const tcp1 = await measureTcp(path, server, { seconds, streams: 1, ticksPerSecond });
    step(`TCP ×${streams}, ${seconds} s`);
    const tcpN = await measureTcp(path, server, { seconds, streams, ticksPerSecond });
    step(`UDP at ${udpRate}, ${seconds} s`);
    const udp = await measureUdp(path, server, { seconds, rate: udpRate, ticksPerSecond });
    step(`ping under equal load (TCP ×1 capped at ${loadRate}), ${seconds} s`);
    const rttCapped = await measureRttUnderLoad(path, server, { seconds, rate: loadRate });
    step(`ping under load (TCP ×1 uncapped), ${seconds} s`);
    const rttLoaded = await measureRttUnderLoad(path, server, { seconds });
    step(`ping idle again, after the transfers (${Math.round(seconds * 100)} × 10 ms)`);
    const rttIdleAfter = await measureRttIdle(path, { count: Math.round(seconds * 100) });
    return { label: path.label, seconds, tcp1, tcpN, udp, rttIdle, rttCapped, rttLoaded, rttIdleAfter };
  } finally {
    await server.stop();
  }
}

/**
 * Data-plane benchmark: every path measured in ONE run, each in two fresh namespaces over a veth
 * link (tunnel MTU 1420), so the ratios compare figures taken under the same load:
 *
 *   wg-go             wireguard-go ↔ wireguard-go (the reference every ratio divides by)
 *   veth              the bare link, no tunnel (the ceiling)
 *   meshd             meshd ↔ meshd
 *   meshd-no-offload  meshd ↔ meshd with MESHD_NO_OFFLOAD=1 (offloads off)
 *   meshd-pure-ts     meshd ↔ meshd with MESHD_PURE_TS=1 (no native addon)
 *   meshd-to-wg-go    meshd sends, wireguard-go receives
 *   wg-go-to-meshd    wireguard-go sends, meshd receives
 *
 * For each: iperf3 TCP with 1 and with 4 parallel streams, iperf3 UDP at a fixed rate (what
 * arrived and the loss), ping RTT every 10 ms (median, p99) idle on the fresh path, during one
 * TCP stream capped at --load-rate (the same offered load on every path: the fair ratio), during
 * one uncapped TCP stream (each path as fast as it goes, so a faster path has more queued ahead
 * of a ping) and idle again after the transfers (JIT-compiled by then), and
 * the CPU seconds of the tunnel's processes (meshd / wireguard-go, from /proc/PID/stat) per Gbit
 * received, sender and receiver side. Measurements: src/lab/path-bench.ts; paths:
 * test/lab/tunnel-paths.ts. Needs root, iproute2, iperf3, iputils-ping, wireguard-go, wg.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/throughput.js [--only LIST] [--seconds N]
 *       [--udp-rate RATE] [--load-rate RATE] [--streams N] [--json]
 *   --only     comma-separated path ids (above), or `mixed` (both meshd/wireguard-go rows),
 *              `all` (default)
 *   --seconds  per transfer (default BENCH_SECONDS, else 5)
 *   --udp-rate iperf3 -b for the UDP test (default BENCH_UDP_RATE, else 1G)
 *   --load-rate iperf3 -b of the capped TCP stream under the equal-load pings (default
 *              BENCH_LOAD_RATE, else 100M: below what wireguard-go carries here)
 *   --repeat   measure every path N times, interleaved (path 1, 2, …, then again), and report
 *              the median of each figure: steadier ratios on a shared machine (BENCH_REPEAT, 1)
 *   --json     one JSON document on stdout; the tables (and progress) go to stderr
 *   BENCH_PROFILE=DIR  V8 CPU profiles of the meshd ↔ meshd engines (open in Chrome DevTools)
 *
 * Exit status: 0 when every selected path was measured, 1 when a run failed (the others are still
 * reported), 2 for bad arguments or missing prerequisites.
 */
import { cpus, loadavg, release } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_LOAD_RATE, LabError, measurePath, onPath, type PathReport } from '../src/lab/index.js';
import { missingPrereqs } from '../test/helpers/prereqs.js';
import { openPath, PATHS, type PathId } from '../test/lab/tunnel-paths.js';

const USAGE = `usage: node dist/bench/throughput.js [--only ${PATHS.map((p) => p.id).join(',')}|mixed|all] [--seconds N] [--udp-rate 1G] [--load-rate 100M] [--streams 4] [--repeat N] [--json]`;

interface Settings {
  ids: PathId[];
  seconds: number;
  streams: number;
  repeat: number;
  udpRate: string;
  loadRate: string;
  json: boolean;
  profileDir: string | undefined;
}

export class UsageError extends Error {}

function intIn(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${what} must be a whole number from ${min} to ${max}, got "${text}"`);
  return n;
}

export function parseSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        only: { type: 'string' },
        seconds: { type: 'string' },
        'udp-rate': { type: 'string' },
        'load-rate': { type: 'string' },
        streams: { type: 'string' },
        repeat: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) throw new UsageError('');
  const known = new Set<string>(PATHS.map((p) => p.id));
  const wanted = new Set<string>();
  for (const tok of (v.only ?? 'all').split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    if (tok === 'all') PATHS.forEach((p) => wanted.add(p.id));
    else if (tok === 'mixed') ['meshd-to-wg-go', 'wg-go-to-meshd'].forEach((id) => wanted.add(id));
    else if (known.has(tok)) wanted.add(tok);
    else throw new UsageError(`--only: unknown path "${tok}"; known: ${[...known].join(', ')}, mixed, all`);
  }
  if (wanted.size === 0) throw new UsageError('--only selects no path');
  const udpRate = v['udp-rate'] ?? env.BENCH_UDP_RATE ?? '1G';
  if (!/^\d+(\.\d+)?[KMG]?$/.test(udpRate)) throw new UsageError(`--udp-rate must look like 500M or 1G (iperf3 -b), got "${udpRate}"`);
  const loadRate = v['load-rate'] ?? env.BENCH_LOAD_RATE ?? DEFAULT_LOAD_RATE;
  if (!/^\d+(\.\d+)?[KMG]?$/.test(loadRate)) throw new UsageError(`--load-rate must look like 100M (iperf3 -b), got "${loadRate}"`);
  return {
    ids: PATHS.filter((p) => wanted.has(p.id)).map((p) => p.id),
    seconds: intIn(v.seconds ?? env.BENCH_SECONDS ?? '5', 'seconds per transfer (--seconds / BENCH_SECONDS)', 1, 600),
    streams: intIn(v.streams ?? '4', '--streams', 2, 128),
    repeat: intIn(v.repeat ?? env.BENCH_REPEAT ?? '1', 'runs per path (--repeat / BENCH_REPEAT)', 1, 20),
    udpRate,
    loadRate,
    json: v.json ?? false,
    profileDir: env.BENCH_PROFILE || undefined,
  };
}

/** What is missing on this machine for the selected paths, with what to install. */
function missingFor(ids: readonly PathId[]): string[] {
  const needs = [...new Set(PATHS.filter((p) => ids.includes(p.id)).flatMap((p) => p.needs))];
  const out = missingPrereqs([...needs, 'iperf3']);
  if (!onPath('ping')) out.push('needs ping (Debian package iputils-ping)');
  return out;
}

interface Ratios {
  tcp1: number | undefined;
  tcpN: number | undefined;
  udp: number | undefined;
  rttIdleMedian: number | undefined;
  rttIdleAfterMedian: number | undefined;
  rttCappedMedian: number | undefined;
  rttCappedP99: number | undefined;
  rttLoadedMedian: number | undefined;
  rttLoadedP99: number | undefined;
  cpuPerGbitTcp1: number | undefined;
}

interface RunError {
  /** 1-based. */
  run: number;
  code: string;
  message: string;
  /** The tail of what the failing command printed. */
  detail: string | undefined;
}

type RunResult = { ok: true; report: PathReport } | { ok: false; error: Omit<RunError, 'run'> };

interface Row {
  id: PathId;
  label: string;
  /** Each figure the median of that figure over `runs`; undefined when no run succeeded. */
  report: PathReport | undefined;
  runs: PathReport[];
  errors: RunError[];
  ratios: Ratios | undefined;
}

/**
 * The median of each number over `values` (same shape; objects and arrays are walked key by key,
 * the middle two averaged for an even count); anything else, and pids, from the first.
 */
export function deepMedian(values: readonly unknown[], key = ''): unknown {
  const first = values[0];
  if (typeof first === 'number' && key !== 'pid') {
    const nums = values.filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
    const mid = nums.length >> 1;
    return nums.length % 2 === 1 ? nums[mid] : (nums[mid - 1]! + nums[mid]!) / 2;
  }
  if (Array.isArray(first)) return first.map((_, i) => deepMedian(values.map((v) => (v as unknown[])[i]), key));
  if (first !== null && typeof first === 'object') {
    return Object.fromEntries(Object.keys(first).map((k) => [k, deepMedian(values.map((v) => (v as Record<string, unknown>)[k]), k)]));
  }
  return first;
}

function medianReport(runs: readonly PathReport[]): PathReport | undefined {
  return runs.length === 0 ? undefined : (deepMedian(runs) as PathReport);
}

function div(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

function ratiosOf(r: PathReport, ref: PathReport): Ratios {
  return {
    tcp1: div(r.tcp1.mbps, ref.tcp1.mbps),
    tcpN: div(r.tcpN.mbps, ref.tcpN.mbps),
    udp: div(r.udp.mbps, ref.udp.mbps),
    rttIdleMedian: div(r.rttIdle.medianMs, ref.rttIdle.medianMs),
    rttIdleAfterMedian: div(r.rttIdleAfter.medianMs, ref.rttIdleAfter.medianMs),
    rttCappedMedian: div(r.rttCapped.medianMs, ref.rttCapped.medianMs),
    rttCappedP99: div(r.rttCapped.p99Ms, ref.rttCapped.p99Ms),
    rttLoadedMedian: div(r.rttLoaded.medianMs, ref.rttLoaded.medianMs),
    rttLoadedP99: div(r.rttLoaded.p99Ms, ref.rttLoaded.p99Ms),
    cpuPerGbitTcp1: div(r.tcp1.cpu.totalSecondsPerGbit, ref.tcp1.cpu.totalSecondsPerGbit),
  };
}

function log(line: string): void {
  process.stderr.write(`[throughput ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function measureOne(id: PathId, s: Settings, step: string): Promise<RunResult> {
  const spec = PATHS.find((p) => p.id === id)!;
  log(`[${step}] ${spec.label}: setting up`);
  try {
    const open = await openPath(id, s.profileDir && id === 'meshd' ? { cpuProfileDir: s.profileDir } : {});
    try {
      const report = await measurePath(open.path, {
        seconds: s.seconds,
        streams: s.streams,
        udpRate: s.udpRate,
        loadRate: s.loadRate,
        onProgress: (l) => log(`[${step}] ${l}`),
      });
      return { ok: true, report };
    } finally {
      await open.close();
    }
  } catch (e) {
    const code = e instanceof LabError ? e.code : 'E_BENCH';
    const message = e instanceof Error ? e.message : String(e);
    const detail = e instanceof LabError && e.stderr ? e.stderr.trim().split('\n').slice(-8).join('\n') : undefined;
    log(`[${step}] ${spec.label}: FAILED (${code}) ${message}`);
    return { ok: false, error: { code, message, detail } };
  }
}

// ── text output ────────────────────────────────────────────────────────────────────────────────

const f0 = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(0));
const f2 = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(2));
const f3 = (x: number | undefined): string => (x === undefined ? '-' : x < 1 ? x.toFixed(3) : x.toFixed(2));
const times = (x: number | undefined): string => (x === undefined ? '-' : `${x.toFixed(2)}×`);

/** Left-aligned first column, right-aligned figures. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function render(rows: Row[], s: Settings, loads: { start: number[]; end: number[] }): string {
  const ok = rows
    .filter((r): r is Row & { report: PathReport } => r.report !== undefined)
    .map((r) => ({ ...r, label: r.runs.length < s.repeat ? `${r.label} (${r.runs.length}/${s.repeat} runs)` : r.label }));
  const out: string[] = [];
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  out.push(
    `bench/throughput — ${s.seconds} s per transfer${s.repeat > 1 ? `, median of ${s.repeat} interleaved runs` : ''}, two namespaces over veth, tunnel MTU 1420; ${cpus().length} CPUs, ` +
      `load average ${load(loads.start)} at the start, ${load(loads.end)} at the end`,
  );
  const hasRef = ok.some((r) => r.id === 'wg-go');
  out.push(hasRef ? '×wg = ÷ wireguard-go ↔ wireguard-go in this run' : 'no ratios: wireguard-go ↔ wireguard-go was not measured (add wg-go to --only)');
  out.push('');
  out.push('Throughput (iperf3, Mbit/s received; retr = TCP retransmissions; UDP sent = what iperf3 managed to send)');
  out.push(
    table(
      ['path', 'TCP×1', '×wg', 'retr', `TCP×${s.streams}`, '×wg', 'retr', `UDP ${s.udpRate}: sent`, 'got', 'loss %'],
      ok.map((r) => [
        r.label,
        f0(r.report.tcp1.mbps),
        times(r.ratios?.tcp1),
        f0(r.report.tcp1.retransmits),
        f0(r.report.tcpN.mbps),
        times(r.ratios?.tcpN),
        f0(r.report.tcpN.retransmits),
        f0(r.report.udp.sentMbps),
        f0(r.report.udp.mbps),
        f2(r.report.udp.lossPercent),
      ]),
    ),
  );
  out.push('');
  out.push(
    `Latency (ping -i 0.01 through the path, ms, median and p99): idle on the fresh path; during one TCP stream capped at ${s.loadRate} ` +
      '(the same offered load on every path: the fair ratio); during one uncapped TCP stream (each path as fast as it goes); idle again after the transfers',
  );
  out.push(
    table(
      ['path', 'idle', 'p99', '×wg', `${s.loadRate} load`, 'p99', '×wg', 'Mbit/s', 'full load', 'p99', '×wg', 'Mbit/s', 'idle after', '×wg', 'lost'],
      ok.map((r) => {
        const p = r.report;
        const lost = [p.rttIdle, p.rttCapped, p.rttLoaded, p.rttIdleAfter].map((x) => x.sent - x.received).join('+');
        const rtt = (x: { medianMs: number; p99Ms: number }, ratio: number | undefined) => [f3(x.medianMs), f3(x.p99Ms), times(ratio)];
        return [
          r.label,
          ...rtt(p.rttIdle, r.ratios?.rttIdleMedian),
          ...rtt(p.rttCapped, r.ratios?.rttCappedMedian),
          f0(p.rttCapped.loadMbps),
          ...rtt(p.rttLoaded, r.ratios?.rttLoadedMedian),
          f0(p.rttLoaded.loadMbps),
          f3(p.rttIdleAfter.medianMs),
          times(r.ratios?.rttIdleAfterMedian),
          lost,
        ];
      }),
    ),
  );
  out.push('');
  out.push('CPU seconds per Gbit received, tunnel processes (snd = sender side, rcv = receiver side; veth has none)');
  out.push(
    table(
      ['path', 'TCP×1 snd', 'rcv', 'total', '×wg', `TCP×${s.streams} total`, 'UDP total'],
      ok.map((r) => [
        r.label,
        f2(r.report.tcp1.cpu.senderSecondsPerGbit),
        f2(r.report.tcp1.cpu.receiverSecondsPerGbit),
        f2(r.report.tcp1.cpu.totalSecondsPerGbit),
        times(r.ratios?.cpuPerGbitTcp1),
        f2(r.report.tcpN.cpu.totalSecondsPerGbit),
        f2(r.report.udp.cpu.totalSecondsPerGbit),
      ]),
    ),
  );
  const meshd = ok.find((r) => r.id === 'meshd');
  if (meshd) {
    out.push('');
    const gbit = meshd.report.tcp1.mbps / 1000;
    out.push(
      `targets: meshd ↔ meshd TCP×1 ${f2(gbit)} Gbit/s (≥ 3), ${times(meshd.ratios?.tcp1)} wireguard-go (≥ 3×); ` +
        `RTT median ${times(meshd.ratios?.rttIdleMedian)} idle (${times(meshd.ratios?.rttIdleAfterMedian)} after traffic), ` +
        `${times(meshd.ratios?.rttCappedMedian)} under equal load, ${times(meshd.ratios?.rttLoadedMedian)} under full load (≤ 1.2×; ` +
        `full load: meshd carried ${f0(meshd.report.rttLoaded.loadMbps)} Mbit/s, wireguard-go ${f0(ok.find((r) => r.id === 'wg-go')?.report.rttLoaded.loadMbps)})`,
    );
  }
  for (const r of rows) {
    for (const e of r.errors) {
      out.push('');
      out.push(`${r.label}${s.repeat > 1 ? `, run ${e.run}` : ''}: FAILED (${e.code}) ${e.message}`);
      if (e.detail) out.push(e.detail.replace(/^/gm, '    '));
    }
  }
  if (s.profileDir) out.push('', `CPU profiles of the meshd ↔ meshd engines: ${s.profileDir}`);
  return out.join('\n') + '\n';
}

async function main(): Promise<number> {
  let s: Settings;
  try {
    s = parseSettings(process.argv.slice(2), process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(e.message ? `bench/throughput: ${e.message}\n${USAGE}\n` : `${USAGE}\n`);
    return e.message ? 2 : 0;
  }
  const missing = missingFor(s.ids);
  if (missing.length > 0) {
    process.stderr.write(`bench/throughput: cannot run here:\n  ${missing.join('\n  ')}\nrun as root with those installed, or pick fewer paths with --only\n`);
    return 2;
  }
  const startedAt = new Date().toISOString();
  const loads = { start: loadavg(), end: [] as number[] };
  const rows: Row[] = s.ids.map((id) => ({ id, label: PATHS.find((p) => p.id === id)!.label, report: undefined, runs: [], errors: [], ratios: undefined }));
  for (let run = 1; run <= s.repeat; run++) {
    for (const [i, row] of rows.entries()) {
      const step = s.repeat > 1 ? `run ${run}/${s.repeat}, ${i + 1}/${rows.length}` : `${i + 1}/${rows.length}`;
      const r = await measureOne(row.id, s, step);
      if (r.ok) row.runs.push(r.report);
      else row.errors.push({ run, ...r.error });
    }
  }
  loads.end = loadavg();
  for (const r of rows) r.report = medianReport(r.runs);
  const ref = rows.find((r) => r.id === 'wg-go')?.report;
  for (const r of rows) if (r.report && ref) r.ratios = ratiosOf(r.report, ref);
  if (s.json) {
    const doc = {
      bench: 'throughput',
      startedAt,
      finishedAt: new Date().toISOString(),
      settings: { seconds: s.seconds, streams: s.streams, udpRate: s.udpRate, loadRate: s.loadRate, repeat: s.repeat, tunnelMtu: 1420, paths: s.ids },
      machine: { cpus: cpus().length, kernel: release(), node: process.version, loadavgStart: loads.start, loadavgEnd: loads.end },
      reference: ref ? ref.label : null,
      paths: rows,
    };
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    process.stderr.write(render(rows, s, loads));
  } else {
    process.stdout.write(render(rows, s, loads));
  }
  return rows.every((r) => r.errors.length === 0) ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`bench/throughput: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

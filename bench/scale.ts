/**
 * Scale benchmark (root; not run in CI): N real `meshd` daemons (bin/meshd.js), each a host in
 * its own network namespace on one lab LAN, brought into one network by the quick start. The
 * owner's DWN sits behind the man-in-the-middle proxy (test/helpers/dwn-proxy.ts), run in the
 * owner's namespace: it listens on OWNER:8787 (and so 127.0.0.1:8787, where the owner's daemon
 * finds its "embedded" DWN) and forwards to a dwn-server on 127.0.0.1:8788, so every DWN request
 * of every node, the owner's included, is counted by signer.
 *
 * Prints: time for the owner to add N−1 devices (`peer add` each), join time of the last device
 * (`up` started → first ping to the owner), time to a full mesh (every ordered pair, or for big N
 * a sample of pairs plus every node → owner; it says which), endpoint change → every other
 * daemon's map (median, p95), removal → every data plane (max), idle CPU per daemon and of the
 * DWN server, DWN requests per node per idle minute, daemon RSS. `--flood K` then makes one
 * member write K junk endpoint records under its own node record (with its own identity, from
 * its home) and repeats the steady-state measurements; that member is then the one removed,
 * and the bench counts its records left on the DWN (the junk must go with it).
 *
 *   node dist/bench/scale.js [--nodes 50] [--flood 0] [--idle-seconds 60] [--settle-seconds 50] [--sample-pairs 200]
 *                            [--concurrency 8] [--add-concurrency 4] [--keep] [--profile]
 *
 * An idle window starts --settle-seconds after the endpoint change (default 60: the last ping
 * of the full-mesh check is answered by a WireGuard keepalive 10 s later, and a session stays
 * active 45 s after its last packet), so the window measures a quiet mesh.
 *
 * `--profile`: in each idle window, a CPU profile and the memory figures of one member's daemon
 * (bench/inspect-daemon.ts; the .cpuprofile stays in the lab directory with --keep).
 *
 * `peer add` runs --add-concurrency at a time (the mesh IPs it hands out are checked to be
 * distinct). A joining `up` that gets no first map in time (the daemon waits 20 s: on a small,
 * busy machine many joins at once can take longer) is run again, at most twice, and counted.
 *
 * Daemon state is read from their control sockets (a Unix socket in each home, reachable from
 * here without entering the namespace). A change is timed by the daemons themselves: each one's
 * `POST /v0/peer/changes` says when its map, and its data plane, got a peer's new endpoint or
 * lost the peer (src/daemon/peer-changes.ts); the bench asks each daemon at most once a second,
 * a few at a time, so asking does not load the machine it measures. `GET /v0/status` (the
 * whole status) is read only around the idle windows.
 * Everything runs in one Lab: namespaces, daemons, proxy and DWN are removed on every exit path.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Internet, Lab, onPath, ping, type Host, type Netns } from '../src/lab/index.js';
import { callDaemon } from '../src/daemon/api.js';
import { SESSION_ACTIVE_TIMEOUT_MS } from '../src/engine/magicsock/constants.js';
import type { AgentStatus } from '../src/daemon/agent-types.js';
import type { PeerChanges } from '../src/daemon/peer-changes.js';
import { median, meshd, meshdJson, meshdOk, upJoiner, waitUntil, type Mesh, type MeshNode } from '../test/lab/agent-helpers.js';
import { diffCounters } from '../test/helpers/dwn-proxy.js';
import { CLK_TCK, cpuTicks, mapLimit, pct, prepareHosts, requestsOf, rssKiB, startProxiedOwner, type Prepared, type ProxyHandle } from '../test/lab/scale-helpers.js';

const SELF_JS = fileURLToPath(import.meta.url);
/** WireGuard's passive keepalive (10 s) + the data plane's session timeout + 5 s. */
const SETTLE_SECONDS = 10 + SESSION_ACTIVE_TIMEOUT_MS / 1000 + 5;
const INSPECT_JS = fileURLToPath(new URL('./inspect-daemon.js', import.meta.url));

type Status = AgentStatus & { state: string; pid: number };

function log(s: string): void {
  process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

const ms = (x: number): string => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'n/a');

/** The machine's load average (1, 5, 15 min), for every figure: this machine is shared. */
const load = (): string => `load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`;

const spread = (xs: number[]): string => `median ${ms(median(xs))}, p95 ${ms(pct(xs, 95))}, max ${ms(xs.length ? Math.max(...xs) : NaN)}`;

function status(n: MeshNode, timeoutMs = 5000): Promise<Status> {
  return callDaemon<Status>(n.home, 'GET', '/v0/status', undefined, timeoutMs);
}

/** The mesh under test (as the lab tests build it), plus the bench's own state. */
interface Ctx extends Omit<Mesh, 'close'> {
  proxy: ProxyHandle;
  concurrency: number;
  /** Joining `up`s run again (no first map in time). */
  upRetries: number;
  /** Profile one member's daemon in each idle window. */
  profile: boolean;
  /** Wait this long after the endpoint change before an idle window (sessions going idle). */
  settleSeconds: number;
}

/**
 * Probes `addr` from `ns` until one answers; resolves with the wall-clock ms of that answer, or
 * null after `timeoutMs`. ICMP echo when `ping` is installed, else a TCP connection to a closed
 * port (answered by RST): src/lab/ping.ts. Resolution is one probe (at most ~1 s when the
 * address does not answer yet).
 */
async function firstAnswer(ns: Netns, addr: string, timeoutMs: number): Promise<number | null> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = await ping(ns, addr, { timeoutMs: 1000 }).catch(() => undefined);
    if (r?.ok) return Date.now();
    await sleep(50);
  }
  return null;
}

/** What a log file holds past `from` characters ('' when there is none). */
function logSince(file: string, from: number): string {
  try {
    return readFileSync(file, 'utf8').slice(from);
  } catch {
    return '';
  }
}

/**
 * The joining `up`; run again (at most twice) when its daemon got no first map in time, once
 * that daemon has stopped, or when the DWN did not answer the CLI in time. The CLI may report such a start only as "daemon answered 200": the
 * daemon's log (what it wrote during this attempt) says why.
 */
async function joinNode(c: Ctx, p: Prepared): Promise<MeshNode> {
  const file = join(p.home, 'meshd.log');
  for (let attempt = 0; ; attempt++) {
    const from = logSince(file, 0).length;
    try {
      return await upJoiner(c, p.name, p);
    } catch (e) {
      if (attempt < 2 && /did not become ready in time/.test((e as Error).message)) {
        // the daemon is still starting on a machine this busy: stop it, start again (counted)
        const tail = logSince(file, from).trimEnd().split('\n').slice(-8).join('\n');
        log(`  ${p.name}: daemon not ready within the CLI's wait; \`down\` and \`up\` again. Its log's tail:\n${tail}`);
        await meshd({ ns: p.host.ns, home: p.home, name: p.name }, ['down'], 60_000).catch(() => undefined);
        c.upRetries++;
        continue;
      }
      if (attempt < 2 && /did not answer within/.test((e as Error).message)) {
        // the DWN was too busy to answer the CLI in time (a small machine, many joins at once)
        c.upRetries++;
        await sleep(2000);
        continue;
      }
      const failed = /"event":"daemon.start-failed"[^\n]*no network map/.test(logSince(file, from));
      if (attempt >= 2 || !failed) {
        // the lab (and the log) goes away with the error: say what the daemon was doing
        const tail = logSince(file, from).trimEnd().split('\n').slice(-40).join('\n');
        log(`  ${p.name}: \`up\` failed; its daemon's log during this attempt:\n${tail}`);
        throw e;
      }
      const stopped = await waitUntil(() => logSince(file, from).includes('"event":"daemon.stopped"'), 30_000, 200);
      if (!stopped) throw e;
      c.upRetries++;
      log(`  ${p.name}: no first map in time; \`up\` again`);
    }
  }
}

// ---- measurements ----------------------------------------------------------------------------

/** Every ordered pair when small, else a random sample plus every node → owner. */
function pingPlan(nodes: MeshNode[], owner: MeshNode, sample: number): { pairs: [MeshNode, MeshNode][]; full: boolean } {
  const all: [MeshNode, MeshNode][] = [];
  for (const x of nodes) for (const y of nodes) if (x !== y) all.push([x, y]);
  if (all.length <= sample + nodes.length) return { pairs: all, full: true };
  const toOwner = nodes.filter((n) => n !== owner).map((n): [MeshNode, MeshNode] => [n, owner]);
  const rest = all.filter(([, y]) => y !== owner);
  for (let i = rest.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [rest[i], rest[j]] = [rest[j]!, rest[i]!];
  }
  return { pairs: [...toOwner, ...rest.slice(0, sample)], full: false };
}

async function fullMesh(c: Ctx, t0: number, sample: number): Promise<{ ms: number; pairs: number; full: boolean; failed: string[] }> {
  const plan = pingPlan(c.nodes, c.owner, sample);
  log(`pinging ${plan.pairs.length} pairs (${plan.full ? 'every ordered pair' : `sample of ${plan.pairs.length - (c.nodes.length - 1)} pairs + every node → owner`})`);
  const done = await mapLimit(plan.pairs, Math.max(4, c.concurrency * 2), ([x, y]) => firstAnswer(x.ns, y.meshIP, 120_000));
  const failedPairs = plan.pairs.filter((_, i) => done[i] === null);
  const failed = failedPairs.map(([x, y]) => `${x.name}→${y.name}`);
  for (const [x, y] of failedPairs.slice(0, 5)) await dumpPair(c, x, y);
  const last = Math.max(...done.filter((x): x is number => x !== null));
  return { ms: last - t0, pairs: plan.pairs.length, full: plan.full, failed };
}

/**
 * A pair that never answered: both daemons' status (with the data plane's and the magic socket's
 * view of each other) written to the lab directory, and a one-line summary of each side.
 */
async function dumpPair(c: Ctx, x: MeshNode, y: MeshNode): Promise<void> {
  for (const [a, b] of [[x, y], [y, x]] as const) {
    try {
      const s = await status(a, 15_000);
      const file = join(c.lab.workDir, `stuck-${x.name}-${y.name}-${a.name}.json`);
      writeFileSync(file, JSON.stringify(s, null, 2));
      const p = s.peers.find((q) => q.did === b.did);
      const inPlane = s.dataplane?.peerKeys.includes(p?.wireguardKey ?? '') ?? false;
      log(`stuck ${x.name}→${y.name}: ${a.name} sees ${b.name}: ${p ? JSON.stringify(p) : 'NOT IN MAP'}; in data plane: ${inPlane}; status in ${file}`);
    } catch (e) {
      log(`stuck ${x.name}→${y.name}: ${a.name} status failed: ${(e as Error).message}`);
    }
  }
}

/**
 * Polls `POST /v0/peer/changes` (a few hundred bytes) of each daemon in `daemons`, `c.concurrency`
 * at a time and each at most every POLL_MS, until `done` picks a result from the answer or the
 * deadline passes. The times come from the daemons (when their map had the change, when their
 * data plane had it), on this machine's clock: how often the bench asks does not shift them.
 */
async function untilEach<T>(c: Ctx, daemons: MeshNode[], did: string, deadlineMs: number, done: (a: PeerChanges) => T | undefined): Promise<Map<MeshNode, T>> {
  const found = new Map<MeshNode, T>();
  while (found.size < daemons.length && Date.now() < deadlineMs) {
    const round = Date.now();
    await mapLimit(
      daemons.filter((o) => !found.has(o)),
      c.concurrency,
      async (o) => {
        try {
          const r = done(await callDaemon<PeerChanges>(o.home, 'POST', '/v0/peer/changes', { did }, 5000));
          if (r !== undefined) found.set(o, r);
        } catch {
          /* daemon busy: next round */
        }
      },
    );
    const wait = round + POLL_MS - Date.now();
    if (found.size < daemons.length && wait > 0) await sleep(wait);
  }
  return found;
}

/** Each daemon's pid, from the lock file in its home (nothing asked of the daemon). */
function daemonPids(nodes: MeshNode[]): Map<MeshNode, number> {
  const out = new Map<MeshNode, number>();
  for (const n of nodes) {
    const pid = Number.parseInt(logSince(join(n.home, 'meshd.lock'), 0).trim(), 10);
    if (Number.isInteger(pid) && pid > 0) out.set(n, pid);
  }
  return out;
}

/** CPU the daemons and the DWN server spend from now until the returned function is called. */
function cpuMeter(c: Ctx): () => CpuUse {
  const pids = daemonPids(c.nodes);
  const ticks = (pid: number): number => {
    try {
      return cpuTicks(pid);
    } catch {
      return NaN; // gone
    }
  };
  const before = new Map([...pids].map(([n, pid]) => [n, ticks(pid)]));
  const dwn0 = ticks(c.proxy.dwnPid);
  const proxy0 = ticks(c.proxy.proc.pid);
  const owner = pids.get(c.owner);
  return () => {
    const used = [...pids].map(([n, pid]) => ticks(pid) - before.get(n)!).filter(Number.isFinite);
    const total = used.reduce((x, y) => x + y, 0);
    const msOf = (t: number): number => (t / CLK_TCK) * 1000;
    return {
      daemonsMs: msOf(total),
      perDaemonMs: msOf(median(used)),
      ownerMs: owner === undefined ? NaN : msOf(ticks(owner) - before.get(c.owner)!),
      dwnMs: msOf(ticks(c.proxy.dwnPid) - dwn0),
      proxyMs: msOf(ticks(c.proxy.proc.pid) - proxy0),
    };
  };
}

interface CpuUse {
  daemonsMs: number;
  perDaemonMs: number;
  ownerMs: number;
  dwnMs: number;
  /** The counting proxy in front of the DWN (a bench part, not meshd's). */
  proxyMs: number;
}

const cpuLine = (u: CpuUse): string =>
  `CPU: all daemons ${(u.daemonsMs / 1000).toFixed(2)} s (median ${u.perDaemonMs.toFixed(0)} ms each; owner ${(u.ownerMs / 1000).toFixed(2)} s), DWN server ${(u.dwnMs / 1000).toFixed(2)} s, proxy ${(u.proxyMs / 1000).toFixed(2)} s`;

/** The bench polls each daemon's change log at most this often. */
const POLL_MS = 1000;

interface Spread {
  /** CPU spent from the change until the last daemon had it (or the wait ended). */
  cpu: string;
  /** ms from the change to each daemon's map having it. */
  map: number[];
  /** ms from the change to each daemon's data plane having it. */
  applied: number[];
  missing: string[];
}

/** Moves `node` to a new address on the LAN; when each other daemon's map (and data plane) had it. */
async function endpointChange(c: Ctx, node: MeshNode): Promise<Spread> {
  const others = c.nodes.filter((n) => n !== node);
  const newAddr = c.internet.allocate('public');
  const ns = node.ns;
  await ns.sysctl('net.ipv4.conf.eth0.promote_secondaries', '1');
  const meter = cpuMeter(c);
  const t0 = Date.now();
  await ns.ip('addr', 'add', `${newAddr}/24`, 'dev', 'eth0');
  await ns.ip('addr', 'del', `${node.host.addr}/24`, 'dev', 'eth0');
  await ns.ip('route', 'replace', 'default', 'via', node.host.gateway ?? '198.51.100.1');
  (node as { host: Host }).host = { ...node.host, addr: newAddr };
  const seen = await untilEach(c, others, node.did, t0 + 120_000, (a) => {
    const t = Object.entries(a.endpoints).find(([e]) => e.startsWith(`${newAddr}:`))?.[1];
    return t && t.appliedAt !== null ? t : undefined;
  });
  return {
    cpu: cpuLine(meter()),
    map: [...seen.values()].map((t) => t.mapAt - t0),
    applied: [...seen.values()].map((t) => t.appliedAt! - t0),
    missing: others.filter((o) => !seen.has(o)).map((o) => o.name),
  };
}

/**
 * Owner removes `node`; ms from the start of `peer remove` until each other daemon's map, and
 * its data plane, dropped it (the times their change logs give), and how long the command took
 * (it goes on to rotate the network key after the revocation that makes every node drop the device).
 */
async function removal(c: Ctx, node: MeshNode): Promise<Spread & { commandMs: number; rotationMs: number; wholeCpu: string; failed?: unknown }> {
  const others = c.nodes.filter((n) => n !== node);
  const meter = cpuMeter(c);
  const finishedBefore = (await status(c.owner)).control?.finishedRotations ?? 0;
  const t0 = Date.now();
  let commandMs = NaN;
  let rotationMs = NaN;
  let failed: unknown;
  let rotating = false;
  const command = meshdOk(c.owner, ['peer', 'remove', node.did, '--json'], 300_000).then(
    (out) => {
      commandMs = Date.now() - t0;
      rotating = (JSON.parse(out) as { rotating?: boolean }).rotating === true;
    },
    (e: unknown) => void (failed = e),
  ); // slow after a flood: measured, not cut off
  const gone = await untilEach(c, others, node.did, t0 + 180_000, (a) => (a.left && a.left.mapAt >= t0 && a.left.appliedAt !== null ? a.left : undefined));
  const cpu = cpuLine(meter());
  await command;
  // the owner's daemon answers once the device is revoked and rotates the key after: wait for it
  while (failed === undefined && rotating && Date.now() - t0 < 600_000) {
    const s = await status(c.owner, 20_000).catch(() => undefined);
    if (s?.control && s.control.finishedRotations > finishedBefore && s.control.rotationLeft === null) {
      rotationMs = Date.now() - t0;
      break;
    }
    await sleep(1000);
  }
  if (!rotating) rotationMs = commandMs;
  const wholeCpu = cpuLine(meter());
  c.nodes = c.nodes.filter((n) => n !== node);
  return {
    ...(failed !== undefined ? { failed } : {}),
    map: [...gone.values()].map((t) => t.mapAt - t0),
    applied: [...gone.values()].map((t) => t.appliedAt! - t0),
    missing: others.filter((o) => !gone.has(o)).map((o) => o.name),
    cpu,
    wholeCpu,
    commandMs,
    rotationMs,
  };
}

interface IdleReport {
  seconds: number;
  daemonCpuPct: { median: number; max: number };
  dwnCpuPct: number;
  perNodePerMin: { median: number; max: number; owner: number; total: number; byMethod: Record<string, number>; byNode: Record<string, Record<string, number>> };
  rssMiB: { median: number; max: number };
  /** `map.applied` lines in the daemons' logs: maps applied to the data plane. */
  mapAppliesPerMin: { median: number; max: number };
  /** Subscription events per daemon (its control stats), median. */
  eventsPerMin: number;
}

async function idle(c: Ctx, seconds: number, label = ''): Promise<IdleReport> {
  const pids = new Map<MeshNode, number>();
  const events = new Map<MeshNode, number>();
  await mapLimit(c.nodes, c.concurrency * 2, async (n) => {
    const s = await status(n);
    pids.set(n, s.pid);
    events.set(n, s.control?.events ?? NaN);
  });
  const before = new Map([...pids].map(([n, pid]) => [n, cpuTicks(pid)]));
  const dwnBefore = cpuTicks(c.proxy.dwnPid);
  const cBefore = await c.proxy.counters();
  const t0 = Date.now();
  const profiled = c.profile ? c.nodes.find((n) => n !== c.owner) : undefined;
  const profiling = profiled ? profileDaemon(c, profiled, pids.get(profiled)!, seconds - 2) : undefined;
  await sleep(seconds * 1000);
  const secs = (Date.now() - t0) / 1000;
  const cAfter = await c.proxy.counters();
  const t1 = Date.now();
  if (profiling) out(`${label}profile of ${profiled!.name}'s daemon (its CPU left out below): ${await profiling}`);
  const eventsIn = await mapLimit(c.nodes, c.concurrency * 2, async (n) => ((await status(n)).control?.events ?? NaN) - events.get(n)!);
  const applies = c.nodes.map((n) => logEvents(join(n.home, 'meshd.log'), 'map.applied', t0, t1));
  const cpu = [...pids].filter(([n]) => n !== profiled).map(([n, pid]) => ((cpuTicks(pid) - before.get(n)!) / CLK_TCK / secs) * 100);
  const dwnCpu = ((cpuTicks(c.proxy.dwnPid) - dwnBefore) / CLK_TCK / secs) * 100;
  const rss = [...pids.values()].map((pid) => rssKiB(pid) / 1024);
  const perMin = (k: number): number => (k / secs) * 60;
  const d = diffCounters(cBefore, cAfter);
  const members = c.nodes.filter((n) => n !== c.owner).map((n) => perMin(requestsOf(d, n.did).total));
  const byMethod: Record<string, number> = {};
  for (const [k, v] of Object.entries(d.byMethod)) if (v > 0) byMethod[k] = Math.round(perMin(v) * 10) / 10;
  const byNode: Record<string, Record<string, number>> = {};
  for (const x of c.nodes) {
    const r = requestsOf(d, x.did);
    if (r.total > 0) byNode[x.name] = r.byMethod;
  }
  return {
    seconds: secs,
    daemonCpuPct: { median: median(cpu), max: Math.max(...cpu) },
    dwnCpuPct: dwnCpu,
    perNodePerMin: {
      median: members.length ? median(members) : NaN,
      max: members.length ? Math.max(...members) : NaN,
      owner: perMin(requestsOf(d, c.owner.did).total),
      total: perMin(d.total),
      byMethod,
      byNode,
    },
    rssMiB: { median: median(rss), max: Math.max(...rss) },
    mapAppliesPerMin: { median: perMin(median(applies)), max: perMin(Math.max(...applies)) },
    eventsPerMin: perMin(median(eventsIn)),
  };
}

/** Log lines of `event` with a time in [t0, t1). */
function logEvents(file: string, event: string, t0: number, t1: number): number {
  let k = 0;
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.includes(`"event":"${event}"`)) continue;
      const ts = Date.parse(/"ts":"([^"]+)"/.exec(line)?.[1] ?? '');
      if (ts >= t0 && ts < t1) k++;
    }
  } catch {
    /* no log */
  }
  return k;
}

/** CPU profile and memory figures of one daemon for `seconds` (bench/inspect-daemon.ts, in its namespace). */
async function profileDaemon(c: Ctx, node: MeshNode, pid: number, seconds: number): Promise<string> {
  const file = join(c.lab.workDir, `${node.name}-${Date.now()}.cpuprofile`);
  const r = await node.ns.exec([process.execPath, INSPECT_JS, String(pid), String(seconds), file], { timeoutMs: (seconds + 60) * 1000 });
  return r.code === 0 ? `${r.stdout.trim()} (${file})` : `failed: ${r.stderr.trim()}`;
}

function printIdle(label: string, r: IdleReport): void {
  const p = r.perNodePerMin;
  out(`${label}idle CPU per daemon (${r.seconds.toFixed(0)} s): median ${r.daemonCpuPct.median.toFixed(2)} %, max ${r.daemonCpuPct.max.toFixed(2)} % of one core`);
  out(`${label}idle CPU of the DWN server: ${r.dwnCpuPct.toFixed(2)} % of one core (${load()} at the window's end)`);
  out(`${label}DWN requests per node per idle minute: median ${p.median.toFixed(1)}, max ${p.max.toFixed(1)} (owner ${p.owner.toFixed(1)}; all nodes ${p.total.toFixed(1)}/min: ${JSON.stringify(p.byMethod)})`);
  const busiest = Object.entries(p.byNode)
    .sort((a, b) => Object.values(b[1]).reduce((x, y) => x + y, 0) - Object.values(a[1]).reduce((x, y) => x + y, 0))
    .slice(0, 5);
  if (busiest.length > 0) out(`${label}  busiest nodes (requests in the window): ${busiest.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join('; ')}`);
  out(
    `${label}per daemon per idle minute: ${r.eventsPerMin.toFixed(1)} subscription events (median); maps applied median ${r.mapAppliesPerMin.median.toFixed(1)}, max ${r.mapAppliesPerMin.max.toFixed(1)}`,
  );
  out(`${label}daemon RSS: median ${r.rssMiB.median.toFixed(1)} MiB, max ${r.rssMiB.max.toFixed(1)} MiB`);
}

async function steadyState(c: Ctx, label: string, idleSeconds: number, mover: MeshNode): Promise<void> {
  log(`${label}endpoint change of ${mover.name}`);
  const ec = await endpointChange(c, mover);
  out(`${label}endpoint change → every map (${ec.map.length}/${ec.map.length + ec.missing.length} daemons): ${spread(ec.map)}; → every data plane: ${spread(ec.applied)}${ec.missing.length ? `; never seen by ${ec.missing.join(',')}` : ''} (${load()})`);
  out(`${label}  ${ec.cpu} until then`);
  if (c.settleSeconds > 0) {
    // the mesh was just pinged: data-plane sessions stay active (heartbeats) this long after the
    // last packet, then go quiet; the idle window measures the quiet state
    log(`${label}settling for ${c.settleSeconds} s (sessions go idle ${SESSION_ACTIVE_TIMEOUT_MS / 1000} s after the last packet)`);
    await sleep(c.settleSeconds * 1000);
  }
  log(`${label}idle for ${idleSeconds} s`);
  printIdle(label, await idle(c, idleSeconds, label));
}

// ---- flood (a member writes junk endpoint records under its own node record) ------------------

/** The flood; resolves with how long it took and the context of the node record the junk sits under. */
async function flood(c: Ctx, node: MeshNode, count: number): Promise<{ ms: number; parentContextId: string }> {
  const t0 = Date.now();
  const r = await node.ns.exec([process.execPath, SELF_JS, '--flood-writer', node.home, c.endpoint, c.owner.did, c.networkId, String(count)], {
    timeoutMs: 30 * 60_000,
  });
  if (r.code !== 0) throw new Error(`flood writer failed: ${r.stderr.trim()}`);
  log(`flood: ${r.stdout.trim()}`);
  const parentContextId = /under (\S+)/.exec(r.stdout)?.[1];
  if (!parentContextId) throw new Error(`flood writer did not say where it wrote: ${r.stdout.trim()}`);
  return { ms: Date.now() - t0, parentContextId };
}

/** Endpoint records on the DWN under `parentContextId`, and in the whole network, as the owner queries them. */
async function countEndpoints(c: Ctx, parentContextId: string): Promise<{ under: number; all: number }> {
  const r = await c.owner.ns.exec([process.execPath, SELF_JS, '--count-endpoints', c.owner.home, c.endpoint, c.owner.did, c.networkId, parentContextId], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`counting endpoint records failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as { under: number; all: number };
}

/** Runs in the owner's namespace, as the owner (the DWN's tenant: it reads every record). */
async function countEndpointsMain(home: string, endpoint: string, anchor: string, networkId: string, parentContextId: string): Promise<void> {
  const { openProfile } = await import('../src/identity/profile.js');
  const { DwnClient } = await import('../src/dwn/client.js');
  const { PATHS, PROTOCOL_URI } = await import('../src/control/protocol.js');
  const p = openProfile(home);
  const client = new DwnClient(endpoint, anchor, { did: p.did, edSeed: p.keys.edSeed }, { timeoutMs: 60_000 });
  const all = await client.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, contextId: networkId });
  const under = all.filter((e) => (e.contextId ?? '').startsWith(`${parentContextId}/`)).length;
  process.stdout.write(JSON.stringify({ under, all: all.length }) + '\n');
}

/** Runs inside the member's namespace: K junk endpoint records with the member's own identity. */
async function floodWriter(home: string, endpoint: string, anchor: string, networkId: string, count: number): Promise<void> {
  const { openProfile } = await import('../src/identity/profile.js');
  const { DwnClient } = await import('../src/dwn/client.js');
  const { PATHS, PROTOCOL_URI, DATA_FORMAT, ROLE_NODE } = await import('../src/control/protocol.js');
  const { randomBytes } = await import('node:crypto');
  const p = openProfile(home);
  const client = new DwnClient(endpoint, anchor, { did: p.did, edSeed: p.keys.edSeed }, { timeoutMs: 60_000 });
  const nodes = await client.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, contextId: networkId }, { protocolRole: ROLE_NODE });
  const mine = nodes.find((e) => e.descriptor.recipient === p.did);
  const parentContextId = mine?.contextId;
  if (!parentContextId) throw new Error(`no node record for ${p.did}`);
  let written = 0;
  const t0 = Date.now();
  await mapLimit(Array.from({ length: count }), 8, async () => {
    await client.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS.endpoint,
      parentContextId,
      data: new Uint8Array(Buffer.from(`{"junk":"${randomBytes(96).toString('base64url')}"}`)),
      dataFormat: DATA_FORMAT,
    });
    written++;
  });
  process.stdout.write(`${written} junk endpoint records in ${((Date.now() - t0) / 1000).toFixed(1)} s under ${parentContextId}\n`);
}

// ---- main ------------------------------------------------------------------------------------

function out(s: string): void {
  process.stdout.write(s + '\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '50' },
      flood: { type: 'string', default: '0' },
      'idle-seconds': { type: 'string', default: '60' },
      'settle-seconds': { type: 'string', default: String(SETTLE_SECONDS) },
      'sample-pairs': { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '8' },
      'add-concurrency': { type: 'string', default: '4' },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.nodes);
  const floodCount = Number(values.flood);
  const idleSeconds = Number(values['idle-seconds']);
  const settleSeconds = Number(values['settle-seconds']);
  if (!Number.isFinite(settleSeconds) || settleSeconds < 0) throw new Error('--settle-seconds must be a number ≥ 0');
  const sample = Number(values['sample-pairs']);
  const concurrency = Number(values.concurrency);
  const addConcurrency = Number(values['add-concurrency']);
  if (!Number.isInteger(n) || n < 3 || n > 240) throw new Error('--nodes must be an integer from 3 to 240');
  if (!Number.isInteger(floodCount) || floodCount < 0) throw new Error('--flood must be a non-negative integer');
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');

  const started = Date.now();
  const lab = await Lab.create({ keepWorkDir: values.keep });
  let proxy: ProxyHandle | undefined;
  try {
    const internet = await Internet.create(lab);
    log(`lab ${lab.runTag}: owner + DWN behind the proxy`);
    const o = await startProxiedOwner(lab, internet);
    proxy = o.proxy;
    const c: Ctx = { lab, internet, nodes: [o.owner], owner: o.owner, networkId: o.networkId, endpoint: o.endpoint, proxy: o.proxy, concurrency, upRetries: 0, profile: values.profile, settleSeconds };

    log(`${n - 1} hosts and identities`);
    const names = Array.from({ length: n - 1 }, (_, i) => `n${i + 1}`);
    const prepared = await prepareHosts(internet, names, concurrency);

    log(`owner adds ${n - 1} devices, ${addConcurrency} at a time`);
    const tAdd = Date.now();
    let added = 0;
    const ips = await mapLimit(prepared, addConcurrency, async (p) => {
      const r = await meshdJson<{ meshIP: string | null }>(c.owner, ['peer', 'add', p.did]);
      if (++added % 10 === 0) log(`  ${added}/${prepared.length} added`);
      return r.meshIP;
    });
    if (new Set(ips).size !== ips.length) throw new Error(`concurrent peer adds handed out one mesh IP twice: ${ips.join(' ')}`);
    const addMs = Date.now() - tAdd;
    out(`nodes: ${n} (owner + ${n - 1}); DWN behind the proxy at ${c.endpoint}`);
    out(`owner adds ${n - 1} devices (peer add each, ${addConcurrency} at a time): ${ms(addMs)} (${ms(addMs / (n - 1))} per device)`);

    log(`joining ${n - 2} devices, ${concurrency} at a time`);
    const tJoin = Date.now();
    const joined = await mapLimit(prepared.slice(0, -1), concurrency, async (p, i) => {
      const node = await joinNode(c, p);
      if ((i + 1) % 10 === 0) log(`  ${i + 1} up`);
      return node;
    });
    c.nodes.push(...joined);
    out(`${n - 2} devices joined (${concurrency} at a time): ${ms(Date.now() - tJoin)}${c.upRetries > 0 ? ` (${c.upRetries} \`up\` run again after no first map within the daemon's 20 s)` : ''}`);

    const lastP = prepared.at(-1)!;
    log(`joining the last device ${lastP.name} (timed to its first ping to the owner)`);
    const tLast = Date.now();
    const answered = firstAnswer(lastP.host.ns, c.owner.meshIP, 120_000);
    const last = await joinNode(c, lastP);
    const upMs = Date.now() - tLast;
    const firstPing = (await answered) ?? undefined;
    c.nodes.push(last);
    out(`last device join: \`up\` returned ${ms(upMs)}, first ping to the owner ${firstPing !== undefined ? ms(firstPing - tLast) : 'none within 120 s'} (probe: ${onPath('ping') ? 'ICMP' : 'TCP RST'})`);

    const mesh = await fullMesh(c, tLast, sample);
    out(
      `full mesh (${mesh.full ? `every ordered pair, ${mesh.pairs}` : `${mesh.pairs} pairs: every node → owner + ${mesh.pairs - (n - 1)} random pairs`}) after the last \`up\` started: ${ms(mesh.ms)}${mesh.failed.length ? `; NO ANSWER: ${mesh.failed.slice(0, 20).join(' ')}` : ''} (${load()})`,
    );

    const members = c.nodes.filter((x) => x !== c.owner);
    await steadyState(c, '', idleSeconds, members[0]!);

    // with a flood, the flooding member is the one removed: its junk must go with it
    let flooded: { node: MeshNode; parentContextId: string } | undefined;
    if (floodCount > 0) {
      const flooder = members[1]!;
      log(`flood: ${flooder.name} writes ${floodCount} junk endpoint records`);
      const f = await flood(c, flooder, floodCount);
      flooded = { node: flooder, parentContextId: f.parentContextId };
      const n0 = await countEndpoints(c, f.parentContextId);
      out(`flood: ${flooder.name} wrote ${floodCount} junk endpoint records in ${ms(f.ms)}; the DWN holds ${n0.under} endpoint records under its node, ${n0.all} in the network`);
      await sleep(5000);
      await steadyState(c, `[after flood] `, idleSeconds, members[2] ?? members[0]!);
    }

    const victim = flooded?.node ?? members.at(-1)!;
    log(`removing ${victim.name}`);
    const cRm = await c.proxy.counters();
    const tRm = Date.now();
    try {
      const rm = await removal(c, victim);
      out(
        `removal → every data plane (${rm.applied.length}/${rm.applied.length + rm.missing.length} daemons): ${spread(rm.applied)}; → every map: ${spread(rm.map)}${rm.missing.length ? `; still present at ${rm.missing.join(',')}` : ''}; \`peer remove\` took ${ms(rm.commandMs)}, the key rotation (re-encryption, deletions) was done after ${ms(rm.rotationMs)} (${load()})`,
      );
      out(`  ${rm.cpu} until every data plane had dropped it`);
      out(`  ${rm.wholeCpu} until the key rotation was done (${rm.failed !== undefined ? 'failed' : ms(rm.rotationMs)})`);
      if (rm.failed !== undefined) throw rm.failed; // the figures above are said first
    } finally {
      const d = diffCounters(cRm, await c.proxy.counters());
      const perNode = c.nodes.filter((x) => x !== c.owner && x !== victim).map((x) => requestsOf(d, x.did).total);
      out(
        `DWN requests during the removal (${ms(Date.now() - tRm)}): ${d.total} ${JSON.stringify(d.byMethod)}; owner ${requestsOf(d, c.owner.did).total}, other nodes median ${median(perNode)}, max ${Math.max(...perNode)}`,
      );
    }
    if (flooded) {
      const n1 = await countEndpoints(c, flooded.parentContextId);
      out(`after removing the flooder ${victim.name}: the DWN holds ${n1.under} endpoint records under its node (${n1.under === 0 ? 'the flood is gone' : 'THE FLOOD OUTLIVES THE MEMBER'}), ${n1.all} in the network`);
    }
    out(`total bench time ${ms(Date.now() - started)}`);
  } catch (e) {
    // said now: a failing clean-up below would replace this error
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    const tail = proxy?.proc.stderr().trim().split('\n').slice(-10).join('\n');
    if (tail) log(`proxy stderr (last lines):\n${tail}`);
    throw e;
  } finally {
    log('cleaning up');
    await lab.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--flood-writer');
  const k = process.argv.indexOf('--count-endpoints');
  const a = (j: number, n: number): string => process.argv[j + n]!;
  const run = i >= 0 ? floodWriter(a(i, 1), a(i, 2), a(i, 3), a(i, 4), Number(a(i, 5))) : k >= 0 ? countEndpointsMain(a(k, 1), a(k, 2), a(k, 3), a(k, 4), a(k, 5)) : main();
  run.catch((e: unknown) => {
    process.stderr.write(`bench/scale: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}

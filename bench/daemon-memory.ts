/**
 * What a member daemon's resident set is made of (root; not run in CI). A real DWN in a
 * namespace of its own with a network of N devices (default 100: the owner, N−1 devices that
 * joined and published a nodeInfo and an endpoint, all written by this program's `populate`
 * child), of which a few (`--daemons`, default 2) run a real `meshd up` in their own namespace
 * (the background start, as bench/scale.ts and every user's `meshd up`). Then TCP traffic and
 * pings between those over the mesh, and every daemon is measured at each step:
 *
 *   up        its first map applied and every device in it
 *   traffic   after `--traffic-mb` MiB each way between the first two daemons
 *   idle      `--idle-seconds` later
 *   churn     right after `--churn` devices moved to new endpoints one by one (each a record event
 *             and a new map on every daemon), and `--idle-seconds` after that
 *
 * For each: /proc/PID/status (VmRSS, RssAnon, RssFile) and /proc/PID/smaps summed by what holds
 * it (the node binary, other files, V8's 256 KiB heap pages, malloc's main heap, other anonymous
 * memory). At the end, over the inspector (which itself adds a few MiB: measured after the /proc
 * figures): process.memoryUsage(), v8.getHeapSpaceStatistics(), the scripts loaded, by package,
 * and a heap snapshot summed by type and constructor, with its biggest objects.
 * And the same /proc figures for a bare node and for a node that only imports the daemon's
 * modules, with the daemon's node flags: what the daemon adds to each.
 *
 *   node dist/bench/daemon-memory.js [--devices 100] [--daemons 2] [--traffic-mb 64] [--idle-seconds 20] [--churn 30] [--env K=V …] [--hold-seconds 0] [--compare-bin PATH …] [--keep]
 *
 * `--compare-bin PATH` (repeatable): the last daemons run those builds' bin/meshd.js, one each (e.g.
 * a checkout of the main branch): before and after in one run, on the same network and traffic.
 *
 * `--env K=V` (repeatable) goes to every `meshd up` and so to its daemon: e.g. NODE_OPTIONS or
 * MALLOC_* settings to compare.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { Internet, Lab, type Host } from '../src/lab/index.js';
import { callDaemon } from '../src/daemon/api.js';
import { DAEMON_ENV, DAEMON_NODE_ARGS } from '../src/daemon/background.js';
import type { AgentStatus } from '../src/daemon/agent-types.js';
import { MESHD_BIN, tcpTransfer, pingCount, waitUntil, type MeshNode } from '../test/lab/agent-helpers.js';
import { mapLimit } from '../test/lab/scale-helpers.js';

const SELF_JS = fileURLToPath(import.meta.url);
const DWN_PORT = 8787;
const mib = (kib: number): string => (kib / 1024).toFixed(1);

function log(s: string): void {
  process.stderr.write(`[daemon-memory ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

// ---- /proc ----------------------------------------------------------------------------------

export interface ProcMemory {
  rssKiB: number;
  anonKiB: number;
  fileKiB: number;
  /** smaps Rss summed by holder (KiB). */
  by: Record<string, number>;
}

/** The holder of a mapping, from its smaps header line. */
export function holderOf(header: string): string {
  const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(header);
  if (!m) return 'other';
  const name = m[3] ?? '';
  const size = (parseInt(m[2]!, 16) - parseInt(m[1]!, 16)) / 1024;
  if (name === '') return size === 256 ? 'v8 pages (256 KiB)' : 'other anon';
  if (name === '[heap]') return 'malloc heap (brk)';
  if (name.startsWith('[')) return 'other anon';
  if (/\/node$/.test(name)) return 'node binary';
  if (/meshd_native\.node$/.test(name)) return 'meshd_native.node';
  return 'other files';
}

export function procMemory(pid: number): ProcMemory {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN);
  const by: Record<string, number> = {};
  let holder = 'other';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) holder = holderOf(line);
    else if (line.startsWith('Rss:')) by[holder] = (by[holder] ?? 0) + Number(line.split(/\s+/)[1]);
  }
  return { rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile'), by };
}

function show(label: string, m: ProcMemory): string {
  const parts = Object.entries(m.by)
    .sort((a, b) => b[1] - a[1])
    .filter(([, v]) => v >= 512)
    .map(([k, v]) => `${k} ${mib(v)}`);
  return `${label.padEnd(22)} RSS ${mib(m.rssKiB).padStart(5)} MiB (anon ${mib(m.anonKiB)}, file ${mib(m.fileKiB)}) — ${parts.join(', ')}`;
}

// ---- the populate child (in the DWN's namespace) -------------------------------------------

async function populate(dir: string, devices: number, daemons: number, host: string): Promise<void> {
  const { startDwnServer } = await import('../src/dwn/server.js');
  const { initProfile } = await import('../src/identity/profile.js');
  const { createNetwork, joinNetwork } = await import('../src/control/network-ops.js');
  const { addPeers } = await import('../src/control/peer-ops.js');
  const { ControlClient } = await import('../src/control/control-client.js');
  const server = await startDwnServer({ dataDir: join(dir, 'dwn'), port: DWN_PORT, host: '0.0.0.0' });
  const endpoint = `http://${host}:${DWN_PORT}`;
  const ctxOf = (name: string) => {
    const home = join(dir, `home-${name}`);
    mkdirSync(home, { recursive: true });
    return { home, profile: initProfile(home).profile };
  };
  const owner = ctxOf('owner');
  const net = await createNetwork(owner, { name: 'memory', endpoint });
  const devs = Array.from({ length: devices - 1 }, (_, i) => ({ name: i < daemons ? `m${i}` : `d${i}`, ctx: ctxOf(i < daemons ? `m${i}` : `d${i}`) }));
  await addPeers(
    owner,
    devs.map((d) => d.ctx.profile.did),
  );
  process.stderr.write(`added ${devs.length} devices\n`);
  const endpointOf = (i: number, round: number) => ({
    publicEndpoints: [{ address: `198.51.100.${(i % 200) + 20}`, port: 41000 + i + round * 1000, source: 'static' as const, priority: 5 }],
    localEndpoints: [],
    natType: 'endpoint-independent' as const,
    discoKey: Buffer.alloc(32, (i % 250) + 1).toString('base64'),
  });
  const publish = async (i: number, round: number) => {
    const c = await ControlClient.open({ ctx: devs[i]!.ctx });
    try {
      await c.publishEndpoint(endpointOf(i, round));
    } finally {
      await c.stop();
    }
  };
  await mapLimit(devs, 4, async (d, i) => {
    await joinNetwork(d.ctx, { anchor: owner.profile.did, networkId: net.networkId, endpoint, nodeInfo: { hostname: d.name } });
    if (i >= daemons) await publish(i, 0); // a real daemon publishes its own endpoint
  });
  // "churn K" on stdin: K devices (no daemon's) move to a new endpoint, one after the other
  let round = 0;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const k = /^churn (\d+)$/.exec(line.trim());
    if (!k) return;
    round++;
    void (async () => {
      for (let j = 0; j < Number(k[1]); j++) await publish(daemons + (j % (devs.length - daemons)), round);
      process.stdout.write(JSON.stringify({ event: 'churned', round }) + '\n');
    })();
  });
  process.stdout.write(JSON.stringify({ event: 'ready', networkId: net.networkId, endpoint, homes: devs.slice(0, daemons).map((d) => d.ctx.home) }) + '\n');
  // until the parent closes stdin (or the lab stops this process)
  await new Promise<void>((resolve) => lines.on('close', resolve));
  await server.stop();
}

// ---- the inspect child (in the daemon's namespace) -----------------------------------------

interface Inspected {
  memoryUsage: Record<string, number>;
  heapSpaces: { space_name: string; space_size: number; space_used_size: number }[];
  afterGc: Record<string, number>;
  scripts: Record<string, number>;
  /** The heap snapshot's self sizes summed by node type and name (constructor), biggest first. */
  heapTop: { what: string; count: number; bytes: number }[];
  biggest: string[];
}

interface HeapSnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/**
 * A heap snapshot summed by what each object is (its type, and its constructor or, for strings
 * and code, the type alone): what holds the V8 heap, as DevTools' "Summary" view.
 */
export function heapHistogram(snap: HeapSnapshotJson, top = 25): Inspected['heapTop'] {
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize, width] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size'), f.length];
  const by = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!] ?? '?';
    const named = type === 'object' || type === 'closure' || type === 'native';
    const name = snap.strings[snap.nodes[i + iName]!] ?? '?';
    // strings: DIDs and base64url JSON (JWS/JWE parts, did:jwk keys) apart — held twice?
    const str = type === 'string' || type === 'concatenated string' || type === 'sliced string';
    const what = named ? `${type} ${name}` : str && name.startsWith('did:') ? 'string did:…' : str && name.startsWith('eyJ') ? 'string eyJ…' : type;
    const e = by.get(what) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += snap.nodes[i + iSize]!;
    by.set(what, e);
  }
  return [...by]
    .map(([what, e]) => ({ what, ...e }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, top);
}

/** The snapshot's biggest single objects (e.g. packet buffers: native JSArrayBufferData): "name size", biggest first. */
export function biggestObjects(snap: HeapSnapshotJson, top = 12): string[] {
  const f = snap.snapshot.meta.node_fields;
  const [iName, iSize, width] = [f.indexOf('name'), f.indexOf('self_size'), f.length];
  const all: [string, number][] = [];
  for (let i = 0; i < snap.nodes.length; i += width) all.push([snap.strings[snap.nodes[i + iName]!] ?? '?', snap.nodes[i + iSize]!]);
  return all
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, bytes]) => `${name.slice(0, 40)} ${(bytes / 1024).toFixed(0)}`);
}

async function inspect(pid: number): Promise<void> {
  process.kill(pid, 'SIGUSR1');
  let url: string | undefined;
  for (let i = 0; i < 50 && !url; i++) {
    try {
      const list = (await (await fetch('http://127.0.0.1:9229/json/list')).json()) as { webSocketDebuggerUrl: string }[];
      url = list[0]?.webSocketDebuggerUrl;
    } catch {
      await sleep(100);
    }
  }
  if (!url) throw new Error('no inspector on 127.0.0.1:9229');
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let seq = 0;
  const waiting = new Map<number, (r: unknown) => void>();
  const scripts = new Set<string>();
  const chunks: string[] = [];
  ws.on('message', (m) => {
    const msg = JSON.parse(m.toString()) as { id?: number; method?: string; params?: { url?: string; chunk?: string }; result?: unknown };
    if (msg.method === 'Debugger.scriptParsed' && msg.params?.url) scripts.add(msg.params.url);
    if (msg.method === 'HeapProfiler.addHeapSnapshotChunk' && msg.params?.chunk !== undefined) chunks.push(msg.params.chunk);
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  const call = <T>(method: string, params: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = ++seq;
      waiting.set(id, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  const evaluate = async <T>(expression: string): Promise<T> => (await call<{ result: { value: T } }>('Runtime.evaluate', { expression, returnByValue: true })).result.value;
  const memoryUsage = await evaluate<Record<string, number>>('process.memoryUsage()');
  const heapSpaces = await evaluate<Inspected['heapSpaces']>("process.getBuiltinModule('v8').getHeapSpaceStatistics()");
  await call('HeapProfiler.collectGarbage');
  const afterGc = await evaluate<Record<string, number>>('process.memoryUsage()');
  await call('Debugger.enable');
  await sleep(500);
  await call('Debugger.disable');
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  const snap = JSON.parse(chunks.join('')) as HeapSnapshotJson;
  const heapTop = heapHistogram(snap);
  const biggest = biggestObjects(snap);
  ws.close();
  const byPackage: Record<string, number> = {};
  for (const s of scripts) {
    const key = s.startsWith('node:') ? 'node: builtins' : (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(s)?.[1] ?? /dist\/(src\/[^/]+|bench|test)/.exec(s)?.[1] ?? 'other');
    byPackage[key] = (byPackage[key] ?? 0) + 1;
  }
  const out: Inspected = { memoryUsage, heapSpaces, afterGc, scripts: byPackage, heapTop, biggest };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// ---- baselines --------------------------------------------------------------------------------

/** A node with the daemon's flags that runs `code` (ESM) and then idles: its /proc figures. */
async function baseline(lab: Lab, code: string): Promise<ProcMemory> {
  const ns = await lab.addNamespace('base');
  const p = ns.spawn([process.execPath, ...DAEMON_NODE_ARGS, '--input-type=module', '-e', `${code}; console.log('idle'); setInterval(() => {}, 1e9)`], {
    label: 'baseline',
    env: DAEMON_ENV,
  });
  try {
    await p.waitFor('idle', 30_000);
    await sleep(3000);
    return procMemory(p.pid);
  } finally {
    await p.stop(500);
  }
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values: o, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      devices: { type: 'string', default: '100' },
      daemons: { type: 'string', default: '2' },
      'traffic-mb': { type: 'string', default: '64' },
      'idle-seconds': { type: 'string', default: '20' },
      keep: { type: 'boolean', default: false },
      env: { type: 'string', multiple: true, default: [] },
      'hold-seconds': { type: 'string', default: '0' },
      'compare-bin': { type: 'string', multiple: true, default: [] },
      churn: { type: 'string', default: '30' },
      dir: { type: 'string' },
      host: { type: 'string' },
    },
  });
  if (positionals[0] === 'populate') return populate(o.dir!, Number(o.devices), Number(o.daemons), o.host!);
  if (positionals[0] === 'inspect') return inspect(Number(positionals[1]));
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/daemon-memory: needs root (network namespaces, TUN)\n');
    process.exit(2);
  }
  const devices = Math.max(3, Number(o.devices));
  const daemons = Math.min(devices - 1, Math.max(2, Number(o.daemons), o['compare-bin'].length + 1));
  const trafficBytes = Math.max(0, Number(o['traffic-mb'])) * 1024 * 1024;
  const env: Record<string, string> = {};
  for (const kv of o.env) {
    const i = kv.indexOf('=');
    if (i < 1) throw new Error(`--env takes K=V, not "${kv}"`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const lab = await Lab.create({ keepWorkDir: o.keep });
  try {
    const dist = fileURLToPath(new URL('../src/', import.meta.url));
    const bare = await baseline(lab, 'void 0');
    const imported = await baseline(lab, ['cli/run.js', 'daemon/daemon.js', 'daemon/agent.js', 'daemon/log.js'].map((f) => `await import(${JSON.stringify(pathToFileURL(join(dist, f)).href)})`).join(';'));

    const internet = await Internet.create(lab);
    const dwnHost = await internet.addHost('dwn', { network: 'public' });
    const dir = join(lab.workDir, 'net');
    log(`populating a network of ${devices} devices on a DWN at ${dwnHost.addr}:${DWN_PORT}`);
    const pop = dwnHost.ns.node(SELF_JS, ['populate', '--dir', dir, '--devices', String(devices), '--daemons', String(daemons), '--host', dwnHost.addr], { label: 'populate', stdin: 'pipe' });
    const ready = JSON.parse((await pop.waitFor(/\{"event":"ready".*\}/, 20 * 60_000))[0]) as { homes: string[] };
    const hosts: Host[] = [];
    for (let i = 0; i < daemons; i++) hosts.push(await internet.addHost(`m${i}`, { network: 'public' }));
    log(`${daemons} daemons: meshd up`);
    // the last daemons may run other builds of meshd (--compare-bin, one daemon each), the rest this one
    const compare = o['compare-bin'];
    const firstCompared = daemons - compare.length;
    const binOf = (i: number) => (i >= firstCompared ? compare[i - firstCompared]! : MESHD_BIN);
    const nodes = await Promise.all(
      ready.homes.map(async (home, i): Promise<MeshNode> => {
        const host = hosts[i]!;
        const r = await host.ns.exec([process.execPath, binOf(i), '--home', home, 'up', '--json'], { timeoutMs: 120_000, env: { MESHD_DEBUG: '', ...env } });
        if (r.code !== 0) throw new Error(`meshd up on m${i} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
        const up = JSON.parse(r.stdout) as { identity: { did: string; meshIP: string; meshIP6: string; wireguardKey: string } };
        return { name: `m${i}`, host, ns: host.ns, home, env, ...up.identity };
      }),
    );
    const label = (i: number) => `m${i}${compare.length > 0 ? (i >= firstCompared ? ` (compare ${i - firstCompared + 1})` : ' (this build)') : ''}`;
    type St = AgentStatus & { pid: number };
    const st = (n: MeshNode) => callDaemon<St>(n.home, 'GET', '/v0/status', undefined, 10_000);
    const pids: number[] = [];
    for (const n of nodes) {
      const full = await waitUntil(async () => ((await st(n)).peers.length >= devices - 1 ? true : undefined), 120_000, 500);
      const s = await st(n);
      if (!full) log(`warning: ${n.name}'s map has ${s.peers.length} peers, not ${devices - 1}`);
      pids.push(s.pid);
    }
    const rows: string[] = [show('bare node', bare), show('daemon modules imported', imported)];
    const measure = (step: string) => nodes.forEach((_, i) => rows.push(show(`${step}: ${label(i)}`, procMemory(pids[i]!))));
    measure(`up (${devices - 1} peers)`);
    if (trafficBytes > 0) {
      // every daemon sends and receives the same: a ring of transfers, then pings to every other
      log(`traffic: ${trafficBytes / 1048576} MiB from each daemon to the next, pings`);
      for (const [i, x] of nodes.entries()) {
        const y = nodes[(i + 1) % nodes.length]!;
        await pingCount(x.ns, y.meshIP, 20, { intervalS: 0.05 });
        await tcpTransfer(x, y, trafficBytes, 5201 + i);
      }
      for (const x of nodes) await mapLimit(nodes.filter((y) => y !== x), 4, (y) => pingCount(x.ns, y.meshIP, 5, { intervalS: 0.1 }));
      measure('after traffic');
    }
    const idle = Number(o['idle-seconds']);
    await sleep(idle * 1000);
    measure(`idle ${idle} s later`);
    const churn = Number(o.churn);
    if (churn > 0) {
      // record events that change the map, as a mesh whose devices move (or a member flooding)
      log(`churn: ${churn} devices move to a new endpoint`);
      pop.stdin?.write(`churn ${churn}\n`);
      await pop.waitFor(/\{"event":"churned","round":1\}/, 20 * 60_000);
      measure('right after the churn');
      await sleep(idle * 1000);
      measure(`churn, idle ${idle} s later`);
    }
    const m = (x: Record<string, number>) =>
      Object.entries(x)
        .map(([k, v]) => `${k} ${(v / 1048576).toFixed(1)}`)
        .join(', ');
    for (const [i, n] of nodes.entries()) {
      const ins = n.ns.node(SELF_JS, ['inspect', String(pids[i])], { label: 'inspect' });
      const insOut = JSON.parse((await ins.waitFor(/\{"memoryUsage".*\}/, 30_000))[0]) as Inspected;
      await ins.stop(500);
      rows.push(`${label(i)} over the inspector:`);
      rows.push(`  process.memoryUsage() MiB: ${m(insOut.memoryUsage)}`);
      rows.push(`  after a full GC:           ${m(insOut.afterGc)}`);
      rows.push(`  V8 spaces (size/used MiB): ${insOut.heapSpaces.filter((s) => s.space_size > 0).map((s) => `${s.space_name.replace(/_space$/, '')} ${(s.space_size / 1048576).toFixed(1)}/${(s.space_used_size / 1048576).toFixed(1)}`).join(', ')}`);
      rows.push(`  scripts loaded: ${Object.entries(insOut.scripts).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      rows.push(`  heap snapshot, self size by type/constructor (KiB, count): ${insOut.heapTop.map((h) => `${h.what} ${(h.bytes / 1024).toFixed(0)} (${h.count})`).join(', ')}`);
      rows.push(`  biggest objects (KiB): ${insOut.biggest.join(', ')}`);
      rows.push(show(`  with the inspector`, procMemory(pids[i]!)));
    }
    process.stdout.write(rows.join('\n') + '\n');
    const hold = Number(o['hold-seconds']);
    if (hold > 0) {
      log(`holding the lab ${hold} s: daemon pids ${pids.join(' ')}`);
      await sleep(hold * 1000);
      nodes.forEach((_, i) => process.stdout.write(show(`after holding: ${label(i)}`, procMemory(pids[i]!)) + '\n'));
    }
    pop.stdin?.end();
  } finally {
    await lab.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/daemon-memory: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}

/**
 * What one endpoint heartbeat costs a receiving device, the DWN server and the writer, without
 * 100 namespaces (not run in CI). A real dwn-server (meshd's, events carrying their data), a
 * network of --nodes devices (real identities, real records), and:
 *  - a receiver: one device's control client in a child process of its own, measured as
 *    bench/scale.ts measures daemons (CPU of the whole process) — plus, with --base DIR, a second
 *    receiver (another device) running the control client of another build (e.g. the branch
 *    point, built in DIR), so both builds take the same events under the same machine load;
 *  - a sink: every other device's subscriptions (as their control clients make them, one per
 *    record kind) in one child process that only counts events: the DWN fans each write out to
 *    all of them, as in a real mesh;
 *  - the writer (this process): every other device re-writes its endpoint record with the same
 *    bytes (`touchEndpoint`, what the daemon's heartbeat does) at --rate writes a second,
 *    round robin.
 * Phases of --seconds each: idle (the reference: nothing written), heartbeats (measured),
 * same-content re-writes (measured: each writer re-writes its nodeInfo with the same data, newly
 * encrypted — what a key rotation's re-encryption is to a reader: a new version, new bytes, the
 * same content), then both again under a CPU profiler in each receiver (its top self-time
 * functions printed) and heartbeats under an allocation sampler (its top allocation sites) —
 * those phases are not used for the CPU figures. Per event = (CPU in the phase − CPU in the
 * idle phase) / events the receiver got. The idle CPU expected at 100 nodes is then 99
 * heartbeats per heartbeat period × that cost.
 *
 *   node dist/bench/event-cost.js [--nodes 100] [--rate 2] [--seconds 60] [--base DIR] [--profile-dir DIR]
 *
 * --rate 2 keeps events 500 ms apart, past the control client's 250 ms debounce: each event is a
 * refresh of its own, as at 100 nodes (one every ~2.4 s). Everything is removed on every exit
 * path (children killed by PID, the DWN's storage deleted).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startDwnServer, type RunningDwnServer } from '../src/dwn/server.js';
import { initProfile, openProfile } from '../src/identity/profile.js';
import { createNetwork, joinNetwork } from '../src/control/network-ops.js';
import { addPeers } from '../src/control/peer-ops.js';
import { NetworkSession, type ControlContext } from '../src/control/session.js';
import { myNodeRecord, publishEndpoint, touchEndpoint } from '../src/control/device-records.js';
import { requireJoinedNetwork } from '../src/control/local-state.js';
import { queryFor, readableKinds } from '../src/control/reader.js';
import { DwnSubscriber } from '../src/dwn/subscriber.js';
import { CLK_TCK, cpuTicks, mapLimit } from '../test/lab/scale-helpers.js';
import { selfTimes } from './inspect-daemon.js';

const SELF_JS = fileURLToPath(import.meta.url);
const HEARTBEAT_MS = 4 * 60_000;

type ToChild = { cmd: 'cpu' } | { cmd: 'stats' } | { cmd: 'profile-start'; alloc: boolean } | { cmd: 'profile-stop'; file: string } | { cmd: 'stop' };
interface ChildStats {
  events: number;
  refreshes: number;
  fullLoads: number;
  eventReads: number;
  rebuilds: number;
  contentRewrites: number;
  /** Full derives of the records in force (undefined: a build that derives on every change). */
  fullDerives: number | undefined;
}
type FromChild =
  | { type: 'ready' }
  | { type: 'cpu'; us: number }
  | ({ type: 'stats' } & ChildStats)
  | { type: 'profile'; top: { fn: string; ms: number }[]; sampledMs: number; allocs: { fn: string; kb: number }[] | undefined; allocKb: number }
  | { type: 'error'; message: string };

interface AllocNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocNode[];
}

/** Bytes allocated by function (sampled, objects collected since included), most first. */
function allocSites(head: AllocNode, top: number): { sites: { fn: string; kb: number }[]; totalKb: number } {
  const by = new Map<string, number>();
  let total = 0;
  const walk = (n: AllocNode): void => {
    if (n.selfSize > 0) {
      const f = n.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`;
      by.set(key, (by.get(key) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c);
  };
  walk(head);
  const sites = [...by].map(([fn, b]) => ({ fn, kb: Math.round(b / 102.4) / 10 })).sort((a, b) => b.kb - a.kb).slice(0, top);
  return { sites, totalKb: total / 1024 };
}

// ---------------------------------------------------------------- children

/** Answers the parent's questions; `extra` handles what is particular to the child. */
function serve(onStats: () => FromChild, stop: () => Promise<void>): void {
  let profiler: import('node:inspector/promises').Session | undefined;
  let sampling = false;
  process.on('message', (m: ToChild) => {
    void (async () => {
      try {
        if (m.cmd === 'cpu') {
          const u = process.cpuUsage();
          process.send!({ type: 'cpu', us: u.user + u.system });
        } else if (m.cmd === 'stats') {
          process.send!(onStats());
        } else if (m.cmd === 'profile-start') {
          const { Session } = await import('node:inspector/promises');
          profiler = new Session();
          profiler.connect();
          // one or the other: the allocation sampler's stack walks would show in the CPU profile
          sampling = m.alloc;
          if (sampling) {
            await profiler.post('HeapProfiler.enable');
            await profiler.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
          } else {
            await profiler.post('Profiler.enable');
            await profiler.post('Profiler.setSamplingInterval', { interval: 500 });
            await profiler.post('Profiler.start');
          }
          process.send!({ type: 'cpu', us: 0 });
        } else if (m.cmd === 'profile-stop') {
          if (sampling) {
            const heap = (await profiler!.post('HeapProfiler.stopSampling')) as { profile: { head: AllocNode } };
            profiler!.disconnect();
            const alloc = allocSites(heap.profile.head, 15);
            process.send!({ type: 'profile', top: [], sampledMs: 0, allocs: alloc.sites, allocKb: alloc.totalKb });
          } else {
            const { profile } = (await profiler!.post('Profiler.stop')) as { profile: Parameters<typeof selfTimes>[0] };
            profiler!.disconnect();
            writeFileSync(m.file, JSON.stringify(profile));
            const sampledMs = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
            process.send!({ type: 'profile', top: selfTimes(profile, 30).filter((x) => !x.fn.startsWith('(idle)')), sampledMs, allocs: undefined, allocKb: 0 });
          }
        } else if (m.cmd === 'stop') {
          await stop();
          process.exit(0);
        }
      } catch (e) {
        process.send!({ type: 'error', message: (e as Error).stack ?? String(e) });
      }
    })();
  });
  process.on('disconnect', () => process.exit(0));
}

/** A device's control client from the build in `dist` (its own or another), in this process. */
async function receiverMain(dist: string, home: string, expectPeers: number): Promise<void> {
  const cc = (await import(pathToFileURL(join(dist, 'src/control/control-client.js')).href)) as typeof import('../src/control/control-client.js');
  const prof = (await import(pathToFileURL(join(dist, 'src/identity/profile.js')).href)) as typeof import('../src/identity/profile.js');
  const ctx = { home, profile: prof.openProfile(home) };
  const client = await cc.ControlClient.open({ ctx, cache: false });
  let ready = false;
  const check = (): void => {
    const m = client.map;
    if (!ready && m && client.stats.mapSource === 'dwn' && m.peers.filter((p) => p.endpoints.length > 0).length >= expectPeers) {
      ready = true;
      process.send!({ type: 'ready' });
    }
  };
  client.on((e) => {
    if (e.type === 'map') check();
    if (e.type === 'error') process.send!({ type: 'error', message: `${e.during}: ${e.error.message}` });
  });
  client.start();
  serve(
    () => {
      const s = client.stats;
      const fullDerives = (client.session as { fullDerives?: number }).fullDerives;
      return { type: 'stats', events: s.events, refreshes: s.refreshes, fullLoads: s.requests.fullLoads, eventReads: s.requests.eventReads, rebuilds: s.rebuilds, contentRewrites: s.contentRewrites ?? 0, fullDerives };
    },
    () => client.stop(),
  );
  check();
}

/** Every other device's subscriptions (as its control client makes them), counting events. */
async function sinkMain(homes: string[]): Promise<void> {
  let events = 0;
  let up = 0;
  const subs: DwnSubscriber[] = [];
  for (const home of homes) {
    const ctx: ControlContext = { home, profile: openProfile(home) };
    const s = await NetworkSession.forNetwork(ctx, requireJoinedNetwork(ctx.profile.dir), 'node');
    const specs = readableKinds('node').map((kind) => {
      const { filter, protocolRole } = queryFor(s.acc, kind);
      return { key: kind, target: s.joined.anchor, build: () => s.client.subscribeMessage(filter, protocolRole), onEvent: () => void events++ };
    });
    const sub = new DwnSubscriber(s.client.endpoint, specs, (st) => {
      if (st.type === 'up' && ++up === homes.length) process.send!({ type: 'ready' });
      if (st.type === 'rejected') process.send!({ type: 'error', message: `sink ${st.key}: ${st.error.message}` });
    });
    sub.start();
    subs.push(sub);
  }
  serve(
    () => ({ type: 'stats', events, refreshes: 0, fullLoads: 0, eventReads: 0, rebuilds: 0, contentRewrites: 0, fullDerives: 0 }),
    async () => {
      for (const s of subs) await s.stop();
    },
  );
}

// ---------------------------------------------------------------- parent

class Child {
  private readonly waiters: Array<(m: FromChild) => boolean> = [];
  readonly exited: Promise<void>;
  constructor(
    readonly label: string,
    readonly proc: ChildProcess,
  ) {
    proc.on('message', (m: FromChild) => {
      if (m.type === 'error') process.stderr.write(`[${label}] ${m.message}\n`);
      const i = this.waiters.findIndex((w) => w(m));
      if (i >= 0) this.waiters.splice(i, 1);
    });
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** The next message of `type` (after sending `cmd`, if given). */
  next<T extends FromChild['type']>(type: T, cmd?: ToChild, timeoutMs = 600_000): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        if (m.type !== type) return false;
        clearTimeout(timer);
        resolve(m as Extract<FromChild, { type: T }>);
        return true;
      });
      void this.exited.then(() => reject(new Error(`${this.label} exited`)));
      if (cmd) this.proc.send(cmd);
    });
  }

  async cpuUs(): Promise<number> {
    return (await this.next('cpu', { cmd: 'cpu' })).us;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.send({ cmd: 'stop' });
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

function spawnChild(label: string, args: string[]): Child {
  return new Child(label, fork(SELF_JS, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '100' },
      rate: { type: 'string', default: '2' },
      seconds: { type: 'string', default: '60' },
      base: { type: 'string' },
      'profile-dir': { type: 'string' },
    },
  });
  const nodes = Number(values.nodes);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(nodes) || nodes < 4) throw new Error('--nodes must be an integer ≥ 4 (the owner, two receivers, a writer)');
  if (!(rate > 0) || !(seconds > 0)) throw new Error('--rate and --seconds must be positive');
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const root = mkdtempSync(join(tmpdir(), `meshd-evcost-${process.pid}-`));
  const profileDir = values['profile-dir'] ?? root;
  const children: Child[] = [];
  let dwn: RunningDwnServer | undefined;
  const cleanup = (): void => {
    for (const c of children) c.kill();
  };
  process.once('SIGINT', () => {
    cleanup();
    void (dwn?.stop() ?? Promise.resolve()).finally(() => {
      rmSync(root, { recursive: true, force: true });
      process.exit(130);
    });
  });
  try {
    dwn = await startDwnServer({ dataDir: join(root, 'dwn'), port: 0, host: '127.0.0.1' });
    const ctxOf = (name: string): ControlContext => {
      const home = join(root, name);
      return { home, profile: initProfile(home).profile };
    };
    const t0 = Date.now();
    const owner = ctxOf('owner');
    const net = await createNetwork(owner, { name: `evcost-${process.pid}`, endpoint: dwn.url });
    const devs = Array.from({ length: nodes - 1 }, (_, i) => ctxOf(`d${i}`));
    await addPeers(owner, devs.map((d) => d.profile.did));
    out(`# ${nodes - 1} devices added in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await mapLimit(devs, 4, (d, i) => joinNetwork(d, { anchor: owner.profile.did, networkId: net.networkId, endpoint: dwn!.url, nodeInfo: { hostname: `d${i}` } }));
    out(`# joined at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const sessions = await mapLimit(devs, 4, async (d, i) => {
      const s = await NetworkSession.forNetwork(d, requireJoinedNetwork(d.profile.dir), 'node');
      await s.load(['keyDelivery', 'network', 'node', 'nodeInfo', 'endpoint']);
      await publishEndpoint(s, {
        publicEndpoints: [{ address: `198.51.100.${(i % 250) + 1}`, port: 41000 + i, source: 'static', priority: 5 }],
        localEndpoints: [],
        natType: 'endpoint-independent',
        discoKey: Buffer.alloc(32, (i % 250) + 1).toString('base64'),
        updatedAt: new Date().toISOString(),
      });
      return s;
    });
    out(`# endpoints published at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const writers = sessions.slice(2);
    const sink = spawnChild('sink', ['sink']);
    children.push(sink);
    sink.proc.send({ homes: devs.slice(2).map((d) => d.home) });
    const receivers: Array<{ name: string; child: Child }> = [];
    const ownDist = resolve(SELF_JS, '../..');
    receivers.push({ name: 'this build', child: spawnChild('receiver', ['receiver', ownDist, devs[0]!.home, String(nodes - 2)]) });
    if (values.base) receivers.push({ name: `base (${values.base})`, child: spawnChild('receiver-base', ['receiver', resolve(values.base, 'dist'), devs[1]!.home, String(nodes - 2)]) });
    for (const r of receivers) children.push(r.child);
    await Promise.all([sink.next('ready'), ...receivers.map((r) => r.child.next('ready'))]);
    out(`# receivers and ${writers.length} sink subscribers ready at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(5000); // let the start-up settle (JIT, GC)

    interface Sample {
      at: number;
      rec: number[];
      recEvents: number[];
      dwnTicks: number;
      sinkUs: number;
      sinkEvents: number;
      writerUs: number;
    }
    const sample = async (): Promise<Sample> => {
      const rec = await Promise.all(receivers.map((r) => r.child.cpuUs()));
      const recEvents = await Promise.all(receivers.map(async (r) => (await r.child.next('stats', { cmd: 'stats' })).events));
      const u = process.cpuUsage();
      return { at: Date.now(), rec, recEvents, dwnTicks: cpuTicks(dwn!.pid), sinkUs: await sink.cpuUs(), sinkEvents: (await sink.next('stats', { cmd: 'stats' })).events, writerUs: u.user + u.system };
    };
    let rr = 0;
    let writes = 0;
    /** One write a device makes, round robin over the writers, at --rate for `ms`. */
    const writing = async (ms: number, write: (s: NetworkSession) => Promise<void>): Promise<void> => {
      const start = Date.now();
      for (let k = 0; ; k++) {
        const due = start + (k * 1000) / rate;
        if (due >= start + ms) break;
        if (due > Date.now()) await sleep(due - Date.now());
        await write(writers[rr++ % writers.length]!);
        writes++;
      }
      await sleep(Math.max(0, start + ms - Date.now()) + 1500); // the last event's debounce and refresh
    };
    const heartbeat = async (s: NetworkSession): Promise<void> => {
      if (!(await touchEndpoint(s))) throw new Error(`device ${s.me} had nothing to re-write`);
    };
    /** The device's nodeInfo again, same content, newly encrypted (a rotation's re-encryption, to a reader). */
    const rewrite = async (s: NetworkSession): Promise<void> => {
      const info = s.nodeRecordOf('nodeInfo', myNodeRecord(s).contextId);
      if (!info) throw new Error(`device ${s.me} has no nodeInfo to re-write`);
      await s.update(info, info.data, s.recipients(s.network().data.epoch));
    };

    out(`# phase 1: idle ${seconds} s`);
    const a = await sample();
    await sleep(seconds * 1000);
    const b = await sample();
    const idleSecs = (b.at - a.at) / 1000;
    out('');
    out(`${nodes} nodes, idle reference ${fmt(idleSecs, 1)} s`);
    receivers.forEach((r, i) => out(`receiver, ${r.name}: idle ${fmt(((b.rec[i]! - a.rec[i]!) / 1000 / idleSecs) * 100 / 1000, 3)} % of a core`));
    const dwnIdle = (((b.dwnTicks - a.dwnTicks) / CLK_TCK) * 1000) / idleSecs;
    out(`dwn-server: idle ${fmt(dwnIdle / 10, 3)} % of a core`);

    /** A measured phase: `what` written at --rate for --seconds; CPU per event above idle. */
    const measure = async (what: string, write: (s: NetworkSession) => Promise<void>): Promise<number[]> => {
      out('');
      out(`# ${what} at ${rate}/s for ${seconds} s`);
      const c0 = await sample();
      const w0 = writes;
      await writing(seconds * 1000, write);
      const c = await sample();
      const written = writes - w0;
      const secs = (c.at - c0.at) / 1000;
      out(`${what}: ${written} written in ${fmt(secs, 1)} s`);
      const perEvent: number[] = [];
      receivers.forEach((r, i) => {
        const idleMsPerS = (b.rec[i]! - a.rec[i]!) / 1000 / idleSecs;
        const ms = (c.rec[i]! - c0.rec[i]!) / 1000;
        const events = c.recEvents[i]! - c0.recEvents[i]!;
        const per = (ms - idleMsPerS * secs) / events;
        perEvent.push(per);
        out(`receiver, ${r.name}: ${events} events: ${fmt(ms, 0)} ms CPU, ${fmt(per)} ms per event above idle`);
      });
      const dwnMs = ((c.dwnTicks - c0.dwnTicks) / CLK_TCK) * 1000;
      const subscribers = writers.length + receivers.length;
      out(`dwn-server: ${fmt((dwnMs - dwnIdle * secs) / written)} ms per write above idle (fanned out to ${subscribers} subscribed devices)`);
      const sinkEvents = c.sinkEvents - c0.sinkEvents;
      const sinkMs = (c.sinkUs - c0.sinkUs - ((b.sinkUs - a.sinkUs) / idleSecs) * secs) / 1000;
      out(`sink (${writers.length} devices' subscriptions, counting only): ${sinkEvents} events, ${fmt(sinkMs / Math.max(1, sinkEvents), 3)} ms per event (WebSocket frame + JSON parse)`);
      const writerMs = (c.writerUs - c0.writerUs - ((b.writerUs - a.writerUs) / idleSecs) * secs) / 1000;
      out(`writer (this process): ${fmt(writerMs / written)} ms per write`);
      return perEvent;
    };

    const perHeartbeat = await measure('phase 2: heartbeats', heartbeat);
    const perMin = ((100 - 1) * 60_000) / HEARTBEAT_MS;
    receivers.forEach((r, i) => {
      const pct = ((perMin * perHeartbeat[i]!) / 60_000) * 100;
      out(`expected at 100 nodes, ${r.name}: ${fmt(perMin, 1)} heartbeat events/min × ${fmt(perHeartbeat[i]!)} ms = ${fmt(pct, 3)} % of a core above the 20-node base`);
    });
    await measure('phase 3: same-content re-writes (nodeInfo)', rewrite);

    /** `what` written again with each receiver under a CPU profiler, or an allocation sampler. */
    const profiled = async (what: string, write: (s: NetworkSession) => Promise<void>, alloc: boolean): Promise<void> => {
      out('');
      out(`# ${what} at ${rate}/s for ${seconds} s under ${alloc ? 'an allocation sampler' : 'a CPU profiler'} in each receiver (not used for the figures above)`);
      const e0 = await Promise.all(receivers.map(async (r) => (await r.child.next('stats', { cmd: 'stats' })).events));
      await Promise.all(receivers.map((r) => r.child.next('cpu', { cmd: 'profile-start', alloc })));
      await writing(seconds * 1000, write);
      for (const [i, r] of receivers.entries()) {
        const file = join(profileDir, `receiver-${i}-${Date.now()}.cpuprofile`);
        const p = await r.child.next('profile', { cmd: 'profile-stop', file });
        const events = (await r.child.next('stats', { cmd: 'stats' })).events - e0[i]!;
        if (p.allocs) {
          out(`receiver, ${r.name}: ${fmt(p.allocKb / Math.max(1, events), 1)} KB allocated per event (${events} events, sampled); top allocation sites (KB in all):`);
          for (const x of p.allocs) out(`  ${String(x.kb).padStart(8)}  ${x.fn}`);
        } else {
          out(`receiver, ${r.name}: ${fmt(p.sampledMs / 1000, 1)} s sampled, ${events} events; top self time (ms):${values['profile-dir'] ? ` ${file}` : ''}`);
          for (const x of p.top.slice(0, 20)) out(`  ${String(x.ms).padStart(8)}  ${x.fn}`);
        }
      }
    };
    await profiled('phase 4: heartbeats', heartbeat, false);
    await profiled('phase 5: same-content re-writes', rewrite, false);
    await profiled('phase 6: heartbeats', heartbeat, true);
    const st = await Promise.all(receivers.map((r) => r.child.next('stats', { cmd: 'stats' })));
    st.forEach((s, i) =>
      out(
        `receiver, ${receivers[i]!.name}: ${s.events} events, ${s.refreshes} refreshes, ${s.rebuilds} map rebuilds, ${s.contentRewrites} same-content re-writes, ${s.fullLoads} full loads, ${s.eventReads} event reads, ${s.fullDerives ?? 'n/a'} full derives in all`,
      ),
    );
    for (const ch of children) await ch.stop();
    for (const s of sessions) await s.close();
  } finally {
    cleanup();
    await dwn?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const mode = process.argv[2];
const fail = (e: unknown): void => {
  process.stderr.write(`event-cost${mode ? ` ${mode}` : ''}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
};
if (mode === 'receiver') {
  receiverMain(process.argv[3]!, process.argv[4]!, Number(process.argv[5])).catch(fail);
} else if (mode === 'sink') {
  process.once('message', (m: { homes: string[] }) => void sinkMain(m.homes).catch(fail));
} else if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch(fail);
}

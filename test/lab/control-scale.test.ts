/**
 * The control plane's DWN traffic per node does not grow with the size of the network.
 *
 * One lab: the owner's DWN behind the counting proxy (test/lab/scale-helpers.ts), so every DWN
 * request is counted by the DID that signed it. Real daemons, started with
 * MESHD_ENDPOINT_HEARTBEAT_MS=5000 so that every node re-publishes its endpoint several times
 * inside a short idle window. The network grows from 4 nodes to 8; after each step (full mesh,
 * every map complete) the requests of each node in an idle window are counted.
 *
 * Every heartbeat is a subscription event at every other node, so the events a node receives
 * grow with N. The requests it makes must not: a heartbeat is a re-write of bytes the readers
 * hold, taken without a read. Asserted: the median requests per node at N=8 ≤ (that at N=4) ×
 * 1.5 + 2. A design in which each heartbeat event makes every node re-query the kind costs
 * (N−1) × heartbeats queries per node on top of its own writes; the test checks that its bound
 * would catch that, with the heartbeat count it measured.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Internet, Lab } from '../../src/lab/index.js';
import { diffCounters } from '../helpers/dwn-proxy.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { AGENT_PREREQS, assertFullMesh, daemonStatus, median, meshdOk, upJoiner, waitUntil, type DaemonStatus, type MeshNode } from './agent-helpers.js';
import { prepareHosts, requestsOf, startProxiedOwner, type ProxiedNetwork } from './scale-helpers.js';

const HEARTBEAT_MS = 5000;
const WINDOW_MS = 25_000;
const ENV = { MESHD_ENDPOINT_HEARTBEAT_MS: String(HEARTBEAT_MS) };
const SIZES = [4, 8] as const;

interface Window {
  n: number;
  seconds: number;
  /** Requests per node in the window (proxy count, by signer). */
  requests: number[];
  /** RecordsWrite per node in the window: its heartbeats. */
  writes: number[];
  /** Subscription events each daemon says it received in the window. */
  events: number[];
  byNode: Record<string, Record<string, number>>;
  /** What the daemons count themselves: requests.eventReads / fullLoads / writes, summed. */
  daemonCounts: { eventReads: number; fullLoads: number; writes: number };
}

async function statuses(nodes: MeshNode[]): Promise<DaemonStatus[]> {
  return Promise.all(nodes.map((n) => daemonStatus(n)));
}

/** Every daemon's map has every other node, with an endpoint. */
async function mapsComplete(nodes: MeshNode[]): Promise<boolean> {
  const all = await statuses(nodes);
  return all.every((s) => nodes.every((n) => n.did === s.identity.did || s.peers.some((p) => p.did === n.did && p.endpoints.length > 0)));
}

async function idleWindow(net: ProxiedNetwork, nodes: MeshNode[]): Promise<Window> {
  const sBefore = await statuses(nodes);
  const cBefore = await net.proxy.counters();
  const t0 = Date.now();
  await sleep(WINDOW_MS);
  const cAfter = await net.proxy.counters();
  const seconds = (Date.now() - t0) / 1000;
  const sAfter = await statuses(nodes);
  const d = diffCounters(cBefore, cAfter);
  const per = nodes.map((n) => requestsOf(d, n.did));
  const ctl = (s: DaemonStatus) => s.control ?? assert.fail(`no control stats from ${s.identity.did}`);
  const daemonCounts = { eventReads: 0, fullLoads: 0, writes: 0 };
  for (const [i, s] of sAfter.entries()) {
    for (const k of ['eventReads', 'fullLoads', 'writes'] as const) daemonCounts[k] += ctl(s).requests[k] - ctl(sBefore[i]!).requests[k];
  }
  return {
    n: nodes.length,
    seconds,
    requests: per.map((r) => r.total),
    writes: per.map((r) => r.byMethod.RecordsWrite ?? 0),
    events: sAfter.map((s, i) => ctl(s).events - ctl(sBefore[i]!).events),
    byNode: Object.fromEntries(nodes.map((n, i) => [n.name, per[i]!.byMethod])),
    daemonCounts,
  };
}

test('control plane: DWN requests per node in an idle window do not grow from 4 to 8 nodes', { timeout: 300_000 }, async (t) => {
  if (!requirePrereqs(t, AGENT_PREREQS)) return;
  const started = Date.now();
  const lab = await Lab.create();
  try {
    const internet = await Internet.create(lab);
    const net = await startProxiedOwner(lab, internet, { env: ENV });
    const prepared = await prepareHosts(internet, ['b', 'c', 'd', 'e', 'f', 'g', 'h'], 4, ENV);
    const nodes: MeshNode[] = [net.owner];
    const windows: Window[] = [];
    for (const size of SIZES) {
      const add = prepared.slice(nodes.length - 1, size - 1);
      for (const p of add) await meshdOk(net.owner, ['peer', 'add', p.did]);
      nodes.push(...(await Promise.all(add.map((p) => upJoiner(net, p.name, p)))));
      await assertFullMesh(nodes, 30_000);
      assert.ok(await waitUntil(() => mapsComplete(nodes), 30_000, 500), `N=${size}: some daemon's map lacks a node or its endpoint`);
      await sleep(2000); // the joins' own writes and reads are done before the window
      windows.push(await idleWindow(net, nodes));
    }

    const [w4, w8] = windows as [Window, Window];
    const heartbeats = Math.floor((WINDOW_MS - HEARTBEAT_MS) / HEARTBEAT_MS); // at least, per node per window
    for (const w of windows) {
      t.diagnostic(
        `N=${w.n} (${w.seconds.toFixed(1)} s idle): requests per node median ${median(w.requests)} [${w.requests.join(' ')}]; ` +
          `heartbeat writes [${w.writes.join(' ')}]; events received [${w.events.join(' ')}]; daemons' own counts ${JSON.stringify(w.daemonCounts)}`,
      );
      t.diagnostic(`N=${w.n} by node: ${JSON.stringify(w.byNode)}`);
      // the window really held heartbeats, and every node heard the others'
      for (const [i, k] of w.writes.entries()) assert.ok(k >= heartbeats, `N=${w.n}: node ${i} wrote ${k} times in the window, expected ≥ ${heartbeats} heartbeats`);
      for (const [i, k] of w.events.entries()) assert.ok(k >= (w.n - 1) * heartbeats, `N=${w.n}: node ${i} received ${k} events, expected ≥ ${(w.n - 1) * heartbeats}`);
    }
    const m4 = median(w4.requests);
    const m8 = median(w8.requests);
    const bound = m4 * 1.5 + 2;
    // what re-querying on every heartbeat event would cost: own writes + (N−1) × heartbeats queries
    const hb = median(w4.writes);
    const old = (n: number): number => hb + (n - 1) * hb;
    t.diagnostic(`median requests per node: N=4 ${m4}, N=8 ${m8} (bound ${bound}); a re-query per event would make it N=4 ${old(4)}, N=8 ${old(8)} (bound ${old(4) * 1.5 + 2})`);
    t.diagnostic(`total test time ${((Date.now() - started) / 1000).toFixed(0)} s`);
    assert.ok(old(8) > old(4) * 1.5 + 2, `the bound would not catch requests growing with N (heartbeats per window: ${hb})`);
    assert.ok(m8 <= bound, `requests per node grow with N: median ${m8} at N=8 > ${m4} × 1.5 + 2 at N=4\n${JSON.stringify(w8.byNode)}`);
  } finally {
    await lab.close();
  }
});

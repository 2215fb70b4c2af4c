/**
 * The agent without its DWN: three hosts by the quick start, then the
 * DWN goes away twice.
 *
 *   - its server process is killed (SIGKILL, by pid: the child of the owner's daemon): existing
 *     tunnels keep working, the nodes notice, and the owner's daemon starts the DWN again;
 *   - the owner goes down and its DWN with it: a daemon restarted meanwhile brings its tunnels
 *     back from the cached map;
 *   - the owner comes back: the nodes reconnect and updates flow again — a peer added after the
 *     return becomes reachable from everyone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import {
  AGENT_PREREQS,
  assertFullMesh,
  buildMesh,
  childPids,
  daemonStatus,
  dwnHealthy,
  joinNode,
  meshdJson,
  meshdOk,
  peerOf,
  pingCount,
  waitUntil,
  type DaemonStatus,
  type Mesh,
  type MeshNode,
} from './agent-helpers.js';

describe('meshd agent: the DWN goes away and comes back', { timeout: 150_000 }, () => {
  let mesh: Mesh | undefined;
  let a!: MeshNode;
  let b!: MeshNode;
  let c!: MeshNode;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    mesh = await buildMesh(3);
    [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
    await assertFullMesh(mesh.nodes, 20_000);
  });
  after(() => mesh?.close());

  async function embeddedDwnPid(n: MeshNode, daemonPid: number): Promise<number> {
    for (const pid of await childPids(n.ns, daemonPid)) {
      const args = (await n.ns.exec(['ps', '-o', 'args=', '-p', String(pid)])).stdout.trim();
      if (args.includes('server-child')) return pid;
    }
    return 0;
  }

  function logLines(n: MeshNode): string[] {
    try {
      return readFileSync(join(n.home, 'meshd.log'), 'utf8').split('\n');
    } catch {
      return [];
    }
  }

  async function waitConnected(nodes: MeshNode[], ms: number): Promise<void> {
    for (const n of nodes) {
      const st = await waitUntil(async () => {
        const s = await daemonStatus(n);
        return s.control?.connected === true && s.network?.mapSource === 'dwn' ? s : undefined;
      }, ms, 250);
      assert.ok(st, `${n.name} did not reconnect to the DWN`);
    }
  }

  test('the embedded DWN is killed: tunnels keep working, and the owner\'s daemon restarts it', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const owner = await daemonStatus(a);
    const dwnPid = await embeddedDwnPid(a, owner.pid);
    assert.ok(dwnPid > 0, `no DWN server among the children of the owner's daemon (pid ${owner.pid})`);
    assert.ok(await dwnHealthy(b.ns, mesh!.endpoint), 'the DWN does not answer before the kill');
    const logMarks = mesh!.nodes.map((n) => logLines(n).length);
    process.kill(dwnPid, 'SIGKILL');
    assert.ok(await waitUntil(() => !pidAlive(dwnPid), 5000), 'the DWN server did not die');

    // every node notices (its subscription drops) …
    for (const [i, n] of mesh!.nodes.entries()) {
      const noticed = await waitUntil(() => logLines(n).slice(logMarks[i]).some((l) => l.includes('"dwn.disconnected"')), 10_000, 100);
      assert.ok(noticed, `${n.name} did not notice that the DWN went away`);
    }
    // … and keeps its tunnels
    await assertFullMesh(mesh!.nodes, 5000);
    assert.equal(await pingCount(b.ns, c.meshIP, 5), 5);
    // the owner's daemon (not restarted itself) brings its DWN back, and every node reconnects
    const back = await waitUntil(async () => {
      const pid = await embeddedDwnPid(a, owner.pid);
      return pid > 0 && pid !== dwnPid && (await dwnHealthy(b.ns, mesh!.endpoint)) ? pid : undefined;
    }, 20_000, 250);
    assert.ok(back, 'the owner daemon did not restart its DWN');
    assert.equal((await daemonStatus(a)).pid, owner.pid, 'the owner daemon restarted');
    await waitConnected(mesh!.nodes, 35_000);
  });

  test('a daemon restarted while the DWN is down brings its tunnels back from the cached map', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    // the owner goes away, and its DWN with it
    await meshdOk(a, ['down']);
    assert.equal(await dwnHealthy(b.ns, mesh!.endpoint), false, 'the DWN still answers with its owner down');
    const before = await daemonStatus(c);
    await meshdOk(c, ['down']);
    const link = await c.ns.exec(['ip', 'link', 'show', 'meshd0']);
    assert.notEqual(link.code, 0, 'meshd0 survived `down`');

    const up = await meshdJson<DaemonStatus>(c, ['up']);
    assert.equal(up.state, 'running');
    assert.notEqual(up.pid, before.pid);
    const s = await daemonStatus(c);
    assert.equal(s.network?.mapSource, 'cache', 'the map did not come from the cache');
    assert.equal(s.control?.connected, false);
    assert.equal(s.network?.mapHash, before.network?.mapHash, 'a different map than the last one applied');
    for (const other of [a, b]) assert.ok(peerOf(s, other), `c lost ${other.name} from its map`);
    await assertFullMesh([b, c], 10_000);
  });

  test('the DWN returns: nodes reconnect and a peer added afterwards is reachable from everyone', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    // the owner comes back, and its DWN with it (same storage)
    await meshdJson<DaemonStatus>(a, ['up', '--dwn-listen', '0.0.0.0']);
    assert.ok(await dwnHealthy(b.ns, mesh!.endpoint), 'the DWN does not answer after its return');
    const returnedAt = Date.now();
    // reconnect backoff: 1 s doubling to 30 s
    await waitConnected(mesh!.nodes, 35_000);
    t.diagnostic(`all nodes reconnected ${Date.now() - returnedAt} ms after the DWN returned`);

    // an update that exists only on the DWN: a new peer
    const addedAt = Date.now();
    const d = await joinNode(mesh!, 'd');
    const reach = await Promise.all(
      [a, b, c].map(async (n) => {
        const got = await waitUntil(() => pingCount(n.ns, d.meshIP, 1), 15_000, 100);
        return got ? Date.now() - addedAt : null;
      }),
    );
    t.diagnostic(`d reachable from a, b, c ${reach.join(' / ')} ms after its \`peer add\` started`);
    assert.ok(reach.every((x) => x !== null), `d not reachable from every node: ${reach.join(' / ')}`);
    await assertFullMesh([...mesh!.nodes, d], 5000);
    for (const n of [a, b, c]) {
      const p = peerOf(await daemonStatus(n), d);
      assert.ok(p && p.meshIP === d.meshIP, `${n.name} does not list d`);
    }
  });
});

/**
 * The agent without its DWN (issue 6, spec 5.5): three hosts by the quick start, then the
 * owner's embedded DWN server is killed (SIGKILL, by pid: the child of the owner's daemon).
 *
 *   - existing tunnels keep working, and the nodes know they are disconnected;
 *   - a daemon restarted while the DWN is down brings its tunnels back from the cached map;
 *   - when the server returns (`meshd dwn serve` on the owner's storage) the nodes reconnect and
 *     updates flow again: a peer added after the return becomes reachable from everyone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pidAlive, type LabProcess } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import {
  AGENT_PREREQS,
  assertFullMesh,
  buildMesh,
  childPids,
  daemonStatus,
  DWN_PORT,
  dwnHealthy,
  joinNode,
  MESHD_BIN,
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
  let dwnPid = 0;
  let dwnServe: LabProcess | undefined;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    mesh = await buildMesh(3);
    [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
    await assertFullMesh(mesh.nodes);
  });
  after(() => mesh?.close());

  test('the embedded DWN is killed: existing tunnels keep working', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const owner = await daemonStatus(a);
    for (const pid of await childPids(a.ns, owner.pid)) {
      const args = (await a.ns.run(['ps', '-o', 'args=', '-p', String(pid)])).trim();
      if (args.includes('server-child')) dwnPid = pid;
    }
    assert.ok(dwnPid > 0, `no DWN server among the children of the owner's daemon (pid ${owner.pid})`);
    assert.ok(await dwnHealthy(b.ns, mesh!.endpoint), 'the DWN does not answer before the kill');
    process.kill(dwnPid, 'SIGKILL');
    assert.ok(await waitUntil(() => !pidAlive(dwnPid), 5000), 'the DWN server did not die');
    assert.equal(await dwnHealthy(b.ns, mesh!.endpoint), false, 'the DWN still answers');

    // every node notices (its subscription drops) …
    for (const n of mesh!.nodes) {
      const down = await waitUntil(async () => (await daemonStatus(n)).control?.connected === false, 10_000, 200);
      assert.ok(down, `${n.name} still believes it is connected to the DWN`);
    }
    // … and keeps its tunnels
    await assertFullMesh(mesh!.nodes, 5000);
    assert.equal(await pingCount(b.ns, c.meshIP, 5), 5);
    const owner2 = await daemonStatus(a);
    assert.equal(owner2.pid, owner.pid, 'the owner daemon restarted');
  });

  test('a daemon restarted while the DWN is down brings its tunnels back from the cached map', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.ok(dwnPid > 0 && !pidAlive(dwnPid), 'needs the DWN down (previous test)');
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
    await assertFullMesh(mesh!.nodes, 10_000);
  });

  test('the DWN returns: nodes reconnect and a peer added afterwards is reachable from everyone', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    // the owner brings its DWN back on the same storage
    dwnServe = a.ns.spawn([process.execPath, MESHD_BIN, '--home', a.home, 'dwn', 'serve', '--listen', '0.0.0.0', '--port', String(DWN_PORT)], { label: 'dwn-serve' });
    await dwnServe.waitFor('DWN listening', 30_000);
    assert.ok(await dwnHealthy(b.ns, mesh!.endpoint), 'the DWN does not answer after its return');
    const returnedAt = Date.now();

    for (const n of mesh!.nodes) {
      // reconnect backoff: 1 s doubling to 30 s (spec 5.5); after ~10 s down, the next try is
      // at most ~16 s away
      const st = await waitUntil(async () => {
        const s = await daemonStatus(n);
        return s.control?.connected === true && s.network?.mapSource === 'dwn' ? s : undefined;
      }, 35_000, 250);
      assert.ok(st, `${n.name} did not reconnect to the DWN`);
    }
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
    await dwnServe.stop();
  });
});

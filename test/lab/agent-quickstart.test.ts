/**
 * The agent for real: the README quick start, command for command, between two
 * hosts in network namespaces — the real CLI, the real embedded DWN server, real TUN devices —
 * then the daemon's life cycle: a second `up`, `kill -9` and a restart over the stale lock,
 * socket and TUN, and a `down` that leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pidAlive } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import {
  AGENT_PREREQS,
  buildMesh,
  daemonStatus,
  meshd,
  meshdJson,
  meshdOk,
  peerOf,
  pidsIn,
  pingCount,
  pingUntil,
  tcpTransfer,
  waitUntil,
  type DaemonStatus,
  type Mesh,
  type MeshNode,
} from './agent-helpers.js';

const TRANSFER_BYTES = 4 * 1024 * 1024;

describe('meshd agent: quick start between two hosts', { timeout: 150_000 }, () => {
  let mesh: Mesh | undefined;
  let a!: MeshNode;
  let b!: MeshNode;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    mesh = await buildMesh(2);
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
  });
  after(() => mesh?.close());

  test('ping both ways over the mesh IPs', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.match(a.meshIP, /^10\.200\.\d+\.\d+$/);
    assert.match(b.meshIP, /^10\.200\.\d+\.\d+$/);
    assert.notEqual(a.meshIP, b.meshIP);
    assert.notEqual(await pingUntil(b.ns, a.meshIP, 10_000), null, 'b → a: no answer');
    assert.notEqual(await pingUntil(a.ns, b.meshIP, 10_000), null, 'a → b: no answer');
    assert.equal(await pingCount(a.ns, b.meshIP, 5), 5, 'a → b lost echoes');
    assert.equal(await pingCount(b.ns, a.meshIP, 5), 5, 'b → a lost echoes');
  });

  test('TCP transfer both ways with matching SHA-256', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await tcpTransfer(from, to, TRANSFER_BYTES);
      assert.equal(r.sent.bytes, TRANSFER_BYTES);
      assert.equal(r.received.bytes, TRANSFER_BYTES, `${from.name} → ${to.name}: bytes received`);
      assert.equal(r.received.sha256, r.sent.sha256, `${from.name} → ${to.name}: checksum`);
    }
  });

  test('status and peer list come from the daemon: direct path, handshake, bytes', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    for (const [me, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const s = await daemonStatus(me);
      assert.equal(s.state, 'running');
      assert.equal(s.identity.did, me.did);
      assert.equal(s.identity.meshIP, me.meshIP);
      assert.equal(s.network?.id, mesh!.networkId);
      assert.equal(s.control?.connected, true, `${me.name}: not connected to the DWN`);
      assert.equal(s.dataplane?.tunName, 'meshd0');
      const p = peerOf(s, other);
      assert.ok(p, `${me.name} does not list ${other.name}`);
      assert.equal(p.meshIP, other.meshIP);
      assert.equal(p.wireguardKey, other.wireguardKey);
      assert.equal(p.online, true);
      assert.equal(p.path, 'direct');
      assert.equal(p.endpoint, `${other.host.addr}:51820`);
      assert.ok(p.lastHandshake !== null && Date.now() - Date.parse(p.lastHandshake) < 120_000, `handshake ${p.lastHandshake}`);
      // the 4 MiB transfers went through this peer, one way each
      assert.ok(p.rxBytes > TRANSFER_BYTES && p.txBytes > TRANSFER_BYTES, `${me.name}: rx ${p.rxBytes} tx ${p.txBytes}`);

      const list = await meshdJson<{ source: string; peers: DaemonStatus['peers'] }>(me, ['peer', 'list']);
      assert.equal(list.source, 'daemon');
      const lp = list.peers.find((x) => x.did === other.did);
      assert.ok(lp && lp.path === 'direct' && lp.meshIP === other.meshIP, JSON.stringify(list.peers));
    }
    const text = await meshdOk(a, ['status']);
    // the daemon view: STATE is how a live peer is reached (offline when it does not answer)
    assert.match(text, new RegExp(`${b.meshIP.replace(/\./g, '\\.')}\\s+direct\\s+${b.host.addr}:51820`));
  });

  test('`meshd up` for a device the owner has not added fails in one line and leaves nothing running', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const stranger = { ns: b.ns, home: join(mesh!.lab.workDir, 'home-stranger'), name: 'stranger' };
    const before = new Set(await pidsIn(b.ns));
    const r = await meshd(stranger, ['up', '--endpoint', mesh!.endpoint, '--anchor', a.did, '--network', mesh!.networkId]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('meshd: '));
    assert.equal(errors.length, 1, `stderr: ${r.stderr}`);
    t.diagnostic(errors[0]!);
    assert.ok(!existsSync(join(stranger.home, 'meshd.sock')) && !existsSync(join(stranger.home, 'meshd.lock')));
    const extra = await waitUntil(async () => (await pidsIn(b.ns)).every((p) => before.has(p)), 3000);
    assert.ok(extra, `processes left in b: ${(await pidsIn(b.ns)).filter((p) => !before.has(p)).join(' ')}`);
    assert.notEqual(await pingUntil(a.ns, b.meshIP, 5000), null, 'b\'s own daemon was disturbed');
  });

  test('a second `meshd up` is idempotent: it says meshd is already up and succeeds; another network is refused', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const before = await daemonStatus(b);
    const r = await meshd(b, ['up']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`already up \\(pid ${before.pid}\\)`));
    const other = await meshd(b, ['up', '--create', 'another']);
    assert.equal(other.code, 1);
    const lines = other.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `stderr: ${other.stderr}`);
    assert.match(lines[0]!, /already running .* in network/);
    // and the running daemon was not disturbed
    const after = await daemonStatus(b);
    assert.equal(after.pid, before.pid);
    assert.notEqual(await pingUntil(a.ns, b.meshIP, 5000), null);
  });

  test('kill -9 of the daemon, then `meshd up`: stale lock, socket and TUN are handled', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const old = await daemonStatus(b);
    process.kill(old.pid, 'SIGKILL');
    assert.ok(await waitUntil(() => !pidAlive(old.pid), 5000), 'daemon did not die');
    // what a crash leaves: the lock with a dead pid and the socket file
    assert.ok(existsSync(join(b.home, 'meshd.lock')), 'lock file gone after kill -9?');
    assert.ok(existsSync(join(b.home, 'meshd.sock')), 'socket file gone after kill -9?');
    // the kernel drops a non-persistent TUN with its last fd; leave a persistent one in its
    // place, as an older crashed version or another tool might have
    await waitUntil(async () => (await b.ns.exec(['ip', 'link', 'show', 'meshd0'])).code !== 0, 3000);
    await b.ns.run(['ip', 'tuntap', 'add', 'dev', 'meshd0', 'mode', 'tun']);
    await b.ns.run(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'meshd0']);
    const status = await meshd(b, ['status']);
    assert.equal(status.code, 0, `status after the crash: ${status.stderr}`);
    assert.doesNotMatch(status.stdout, /Engine: running/, 'status claims a dead daemon runs');

    const up = await meshdJson<DaemonStatus>(b, ['up']);
    assert.equal(up.state, 'running');
    assert.notEqual(up.pid, old.pid);
    const s = await daemonStatus(b);
    assert.equal(s.pid, up.pid);
    assert.ok(pidAlive(s.pid));
    assert.notEqual(await pingUntil(b.ns, a.meshIP, 10_000), null, 'b → a after restart');
    assert.notEqual(await pingUntil(a.ns, b.meshIP, 10_000), null, 'a → b after restart');
    const link = await b.ns.run(['ip', '-d', 'link', 'show', 'meshd0']);
    assert.match(link, /\btun\b/);
    assert.doesNotMatch(link, /persist on/, 'the leftover persistent device is still in use');
    const addrs = await b.ns.run(['ip', 'addr', 'show', 'dev', 'meshd0']);
    assert.match(addrs, new RegExp(`inet ${b.meshIP.replace(/\./g, '\\.')}/16`));
    assert.doesNotMatch(addrs, /10\.99\.0\.1/, 'a stale address of the leftover device survived');
  });

  test('`meshd down` leaves no TUN device, route, socket, lock or process', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    for (const n of [b, a]) {
      const s = await daemonStatus(n);
      const down = await meshdJson<{ stopped: boolean; pid: number }>(n, ['down']);
      assert.equal(down.stopped, true);
      assert.equal(down.pid, s.pid);
      assert.ok(!pidAlive(s.pid), `${n.name}: daemon pid ${s.pid} still alive`);
      const link = await n.ns.exec(['ip', 'link', 'show', 'meshd0']);
      assert.notEqual(link.code, 0, `${n.name}: meshd0 still there: ${link.stdout}`);
      const routes = (await n.ns.run(['ip', 'route', 'show'])) + (await n.ns.run(['ip', '-6', 'route', 'show']));
      assert.doesNotMatch(routes, /10\.200\.|fd0d:e100|meshd0/, `${n.name}: routes left: ${routes}`);
      assert.ok(!existsSync(join(n.home, 'meshd.sock')), `${n.name}: socket left`);
      assert.ok(!existsSync(join(n.home, 'meshd.lock')), `${n.name}: lock left`);
      // nothing of ours keeps running in the namespace (the owner's embedded DWN included)
      const left = await waitUntil(async () => (await pidsIn(n.ns)).length === 0, 3000);
      assert.ok(left, `${n.name}: processes left: ${(await pidsIn(n.ns)).join(' ')}`);
      const again = await meshdJson<{ stopped: boolean; running: boolean }>(n, ['down']);
      assert.deepEqual(again, { stopped: false, running: false });
    }
  });
});

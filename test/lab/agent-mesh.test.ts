/**
 * The agent for real, three hosts brought up by the quick start on one lab internet
 * (real CLI, embedded DWN, TUN devices): live updates from the DWN records.
 *
 *   - an address change on c reaches a and b, and traffic resumes, within 10 s;
 *   - a packet whose inner source is not the sender's mesh IP is dropped and counted;
 *   - an ACL policy (only tcp/22 from group A to host B) is enforced, and a policy change takes
 *     effect within 2 s;
 *   - `peer remove`: the removed host reaches nobody within 5 s, its handshakes (replayed by
 *     wireguard-go with its own key) are refused, and the others keep talking.
 *
 * The tests share the mesh and run in this order (each leaves it fully connected, but the last).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openProfile } from '../../src/identity/profile.js';
import { wgKeyToBase64 } from '../../src/identity/keys.js';
import { INTERNET_NETWORKS, startTcpEcho, tcpProbe, WireguardGo, type LabProcess } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs, type Prereq } from '../helpers/prereqs.js';
import {
  AGENT_PREREQS,
  assertFullMesh,
  buildMesh,
  daemonStatus,
  meshdJson,
  meshdOk,
  peerOf,
  pingCount,
  pingMonitor,
  pingOnce,
  waitUntil,
  type Mesh,
  type MeshNode,
} from './agent-helpers.js';

const REMOVE_PREREQS: Prereq[] = [...AGENT_PREREQS, 'wireguard-go', 'wg'];

describe('meshd agent: three hosts, live updates, ACLs, revocation', { timeout: 200_000 }, () => {
  let mesh: Mesh | undefined;
  let a!: MeshNode;
  let b!: MeshNode;
  let c!: MeshNode;
  let policyVersion = 1; // the initial policy written by `up --create`

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    mesh = await buildMesh(3);
    [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
    await assertFullMesh(mesh.nodes, 20_000);
  });
  after(() => mesh?.close());

  /** `meshd acl set FILE` on the owner; resolves with the time the command returned. */
  async function setPolicy(policy: Record<string, unknown>): Promise<number> {
    policyVersion++;
    const file = mesh!.lab.file(`acl-v${policyVersion}.json`);
    writeFileSync(file, JSON.stringify({ version: policyVersion, ...policy }));
    const r = await meshdJson<{ version: number }>(a, ['acl', 'set', file]);
    assert.equal(r.version, policyVersion);
    return Date.now();
  }

  test('an address change on one host is picked up by the others; traffic resumes within 10 s', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const monitors = [pingMonitor(a.ns, c.meshIP), pingMonitor(b.ns, c.meshIP), pingMonitor(c.ns, a.meshIP)];
    try {
      await sleep(1000);
      for (const m of monitors) assert.ok(m.answers().length > 0, 'no traffic before the change');
      const oldAddr = c.host.addr;
      const newAddr = mesh!.internet.allocate('public');
      const changedAt = Date.now();
      await c.ns.ip('addr', 'del', `${oldAddr}/24`, 'dev', 'eth0');
      await c.ns.ip('addr', 'add', `${newAddr}/24`, 'dev', 'eth0');
      await c.ns.ip('route', 'replace', 'default', 'via', INTERNET_NETWORKS.public.gateway);
      const newEp = `${newAddr}:51820`;
      // traffic: every monitor answered again after the change
      const resumed = await waitUntil(() => monitors.every((m) => m.answers().some((ts) => ts > changedAt + 100)), 10_000, 100);
      const resumeMs = monitors.map((m) => (m.answers().find((ts) => ts > changedAt + 100) ?? NaN) - changedAt);
      t.diagnostic(`traffic resumed after ${resumeMs.join(' / ')} ms (a→c, b→c, c→a)`);
      assert.ok(resumed, `traffic did not resume within 10 s: ${resumeMs.join(' / ')} ms`);
      // records: c republished its endpoints, a and b have them in their maps and use them
      const picked = await waitUntil(
        async () => {
          for (const me of [a, b]) {
            const p = peerOf(await daemonStatus(me), c);
            if (!p || p.endpoint !== newEp || !p.endpoints.includes(newEp) || p.endpoints.some((e) => e.startsWith(`${oldAddr}:`))) return false;
          }
          return true;
        },
        Math.max(1000, changedAt + 10_000 - Date.now()),
        250,
      );
      const pa = peerOf(await daemonStatus(a), c);
      t.diagnostic(`endpoint change in a's map after ${Date.now() - changedAt} ms`);
      assert.ok(picked, `a and b did not pick up ${newEp} within 10 s: a sees ${JSON.stringify(pa)}`);
      assert.equal(pa?.path, 'direct');
    } finally {
      await Promise.all(monitors.map((m) => m.proc.stop(200)));
    }
    await assertFullMesh(mesh!.nodes, 5000);
  });

  test('a packet whose inner source is not the sender’s mesh IP is dropped and counted', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const taken = new Set(mesh!.nodes.map((n) => n.meshIP));
    const spoofed = ['10.200.255.254', '10.200.255.253', '10.200.255.252'].find((x) => !taken.has(x))!;
    await c.ns.ip('addr', 'add', `${spoofed}/32`, 'dev', 'meshd0');
    try {
      const before = await daemonStatus(b);
      const dropsBefore = before.dataplane!.counters.engine.drops['source-not-allowed'];
      const answered = await pingCount(c.ns, b.meshIP, 5, { source: spoofed, intervalS: 0.1 });
      assert.equal(answered, 0, 'b answered a packet from a spoofed source');
      const after = await daemonStatus(b);
      const dropsAfter = after.dataplane!.counters.engine.drops['source-not-allowed'];
      t.diagnostic(`b: source-not-allowed ${dropsBefore} → ${dropsAfter}`);
      assert.ok(dropsAfter - dropsBefore >= 5, `b counted ${dropsAfter - dropsBefore} spoofed packets, sent 5`);
      // the same packets from c's own address pass
      assert.equal(await pingCount(c.ns, b.meshIP, 3, { source: c.meshIP }), 3);
    } finally {
      await c.ns.ip('addr', 'del', `${spoofed}/32`, 'dev', 'meshd0');
    }
  });

  test('ACL: only tcp/22 from group A to host B; a policy change takes effect within 2 s', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const echoes: LabProcess[] = [];
    try {
      echoes.push(await startTcpEcho(b.ns, `${b.meshIP}:22`), await startTcpEcho(b.ns, `${b.meshIP}:2222`));
      const probe = async (from: MeshNode, port: number, timeoutMs = 1000) => (await tcpProbe(from.ns, `${b.meshIP}:${port}`, timeoutMs)).ok;
      assert.ok(await probe(c, 2222), 'allow-all policy: c → b:2222 refused');

      // group A = {c}; host B = b
      const strict = { defaultAction: 'drop', groups: { A: [c.did] }, rules: [{ action: 'accept', src: ['group:A'], dst: [b.did], proto: 'tcp', dstPorts: ['22'] }] };
      const setAt = await setPolicy(strict);
      const applied = await waitUntil(async () => (await daemonStatus(b)).filter.policyVersion === policyVersion, 2000, 100);
      t.diagnostic(`strict policy in b's filter after ${Date.now() - setAt} ms`);
      assert.ok(applied, 'b did not apply the policy within 2 s');
      const drops0 = (await daemonStatus(b)).filter.aclDrop;

      const c22 = await tcpProbe(c.ns, `${b.meshIP}:22`, 2000);
      assert.ok(c22.ok, `c → b:22 blocked: ${c22.error}`);
      assert.match(c22.reply ?? '', new RegExp(`^${c.meshIP.replace(/\./g, '\\.')}:\\d+`), 'b saw another source address');
      assert.equal(await probe(c, 2222), false, 'c → b:2222 passed');
      assert.equal(await pingOnce(c.ns, b.meshIP), false, 'c → b ping passed');
      assert.equal(await probe(a, 22), false, 'a (not in group A) → b:22 passed');
      assert.equal(await pingOnce(a.ns, b.meshIP), false, 'a → b ping passed');
      const drops1 = (await daemonStatus(b)).filter.aclDrop;
      assert.ok(drops1 - drops0 >= 4, `b's filter counted ${drops1 - drops0} ACL drops`);
      // b is the destination the policy protects; b itself may still open connections
      assert.equal(await pingOnce(b.ns, c.meshIP), false, 'c accepted a ping it has no rule for');

      // loosen: tcp/2222 too
      const looser = { ...strict, rules: [{ ...strict.rules[0]!, dstPorts: ['22', '2222'] }] };
      const loosenedAt = await setPolicy(looser);
      const opened = await waitUntil(() => probe(c, 2222, 500), 2000, 0);
      const openMs = Date.now() - loosenedAt;
      t.diagnostic(`tcp/2222 open ${openMs} ms after \`acl set\` returned`);
      assert.ok(opened, `tcp/2222 still blocked ${openMs} ms after the change`);
      assert.ok(openMs <= 2000, `took ${openMs} ms`);
      assert.equal(await probe(a, 2222), false, 'a → b:2222 passed');

      // back to everyone-to-everyone
      const allowAllAt = await setPolicy({ defaultAction: 'drop', rules: [{ action: 'accept', src: ['*'], dst: ['*'] }] });
      const pinged = await waitUntil(() => pingOnce(a.ns, b.meshIP, { waitS: 1 }), 2000, 0);
      const pingMs = Date.now() - allowAllAt;
      t.diagnostic(`a → b ping answered ${pingMs} ms after \`acl set\` returned`);
      assert.ok(pinged && pingMs <= 2000, `a → b ping blocked ${pingMs} ms after allowing all`);
    } finally {
      await Promise.all(echoes.map((e) => e.stop(200)));
    }
    await assertFullMesh(mesh!.nodes, 5000);
  });

  test('peer remove: the removed host reaches nobody within 5 s, its handshakes are refused; the others keep talking', async (t) => {
    if (!requirePrereqs(t, REMOVE_PREREQS)) return;
    const fromC = [pingMonitor(c.ns, a.meshIP), pingMonitor(c.ns, b.meshIP)];
    const ab = pingMonitor(a.ns, b.meshIP);
    const ba = pingMonitor(b.ns, a.meshIP);
    let removedAt = 0;
    try {
      await sleep(1000);
      for (const m of [...fromC, ab, ba]) assert.ok(m.answers().length > 0, 'no traffic before the removal');
      const r = await meshdJson<{ removed: string[]; epoch: number }>(a, ['peer', 'remove', c.did]);
      removedAt = Date.now();
      assert.deepEqual(r.removed, [c.did]);
      assert.ok(r.epoch >= 1, 'network key not rotated');
      await sleep(6500);
    } finally {
      await Promise.all([...fromC, ab, ba].map((m) => m.proc.stop(200)));
    }
    const lastFromC = Math.max(...fromC.flatMap((m) => m.answers()));
    t.diagnostic(`c's last answer ${lastFromC - removedAt} ms after \`peer remove\` returned`);
    assert.ok(lastFromC - removedAt <= 5000, `c still reached a peer ${lastFromC - removedAt} ms after removal`);
    for (const [m, what] of [
      [ab, 'a → b'],
      [ba, 'b → a'],
    ] as const) {
      const late = m.answers().filter((ts) => ts > removedAt + 5000);
      assert.ok(late.length >= 5, `${what} stopped talking after the removal (${late.length} answers in the last 1.5 s)`);
    }
    for (const me of [a, b]) {
      const s = await daemonStatus(me);
      assert.equal(peerOf(s, c), undefined, `${me.name} still lists c`);
      assert.ok(s.network!.epoch >= 1, `${me.name} did not follow the key rotation`);
    }
    assert.equal(await pingCount(a.ns, b.meshIP, 3), 3);

    // c, uncooperative: its daemon gone, wireguard-go with c's own key knocks on a and b
    await meshdOk(c, ['down']);
    const key = wgKeyToBase64(openProfile(c.home).keys.xPrivate);
    const dropsBefore = await Promise.all([a, b].map(async (n) => (await daemonStatus(n)).dataplane!.counters.engine.drops['unknown-peer']));
    const wg = await WireguardGo.start(c.ns, {
      address: `${c.meshIP}/16`,
      privateKey: key,
      listenPort: 51821,
      peers: [a, b].map((n) => ({ publicKey: n.wireguardKey, endpoint: `${n.host.addr}:51820`, allowedIps: [`${n.meshIP}/32`] })),
    });
    assert.equal(wg.publicKey, c.wireguardKey, 'wireguard-go does not have c’s key');
    assert.equal(await pingCount(c.ns, a.meshIP, 3, { waitS: 1 }), 0, 'a answered the removed key');
    assert.equal(await pingCount(c.ns, b.meshIP, 3, { waitS: 1 }), 0, 'b answered the removed key');
    for (const p of await wg.peers()) assert.equal(p.latestHandshake, 0, `a handshake with ${p.publicKey} completed`);
    const dropsAfter = await Promise.all([a, b].map(async (n) => (await daemonStatus(n)).dataplane!.counters.engine.drops['unknown-peer']));
    t.diagnostic(`unknown-peer drops: a ${dropsBefore[0]} → ${dropsAfter[0]}, b ${dropsBefore[1]} → ${dropsAfter[1]}`);
    assert.ok(dropsAfter[0]! > dropsBefore[0]! && dropsAfter[1]! > dropsBefore[1]!, 'handshake initiations from the removed key were not counted as refused');
    await wg.stop();
  });
});

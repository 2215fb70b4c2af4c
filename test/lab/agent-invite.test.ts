/**
 * One-command invites across namespaces standing in for machines (real CLI, embedded DWN,
 * daemons): the owner runs `meshd up --create`, then `meshd invite`; the line it prints is all
 * the other machine runs, and the two ping each other within 10 s. A used single-use invite, an
 * expired one and a revoked one each fail with a one-line reason, and add nobody. A member
 * invites its own devices the same way: admitted by the owner's daemon up to the owner's limit,
 * approved with `meshd peer approve` beyond it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { Internet, Lab, type Host } from '../../src/lab/index.js';
import { addHost, AGENT_PREREQS, createOwner, daemonStatus, meshd, meshdJson, meshdOk, pingUntil, waitUntil, type MeshNode } from './agent-helpers.js';

interface InviteJson {
  invite: string;
  id: string;
  expiresAt: string;
}

describe('meshd invite: one line joins a machine', { timeout: 240_000 }, () => {
  let lab: Lab | undefined;
  let internet: Internet;
  let owner!: MeshNode;
  let seq = 0;
  /** The person's machine, once the member invite test has run. */
  let member: { ns: Host['ns']; home: string; meshIP: string } | undefined;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    internet = await Internet.create(lab);
    owner = (await createOwner(internet, 'a')).owner;
  });
  after(() => lab?.close());

  async function machine(): Promise<{ host: Host; home: string; name: string }> {
    const name = `j${++seq}`;
    return { host: await addHost(internet, name), home: lab!.file(`home-${name}`), name };
  }

  async function invite(args: string[] = []): Promise<InviteJson> {
    return meshdJson<InviteJson>(owner, ['invite', ...args]);
  }

  /** `meshd up <invite>` on a new machine: its exit code, stderr and the time it took. */
  async function upWith(m: { host: Host; home: string }, line: string) {
    const started = Date.now();
    const r = await meshd({ ns: m.host.ns, home: m.home }, ['up', line, '--wait', '30'], 90_000);
    return { ...r, ms: Date.now() - started };
  }

  test('the invite line alone: the two machines ping each other within 10 s', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const inv = await invite(['--label', 'laptop']);
    assert.match(inv.invite, /^meshd-invite-v1\.[A-Za-z0-9_-]+$/);
    assert.ok(!inv.invite.includes('127.0.0.1'), 'the invite names an address the other machine can reach');
    const m = await machine();
    const started = Date.now();
    const r = await upWith(m, inv.invite);
    assert.equal(r.code, 0, r.stderr);
    const st = await meshdJson<{ identity: { meshIP: string } }>({ ns: m.host.ns, home: m.home }, ['status']);
    const both = await Promise.all([pingUntil(m.host.ns, owner.meshIP, 10_000), pingUntil(owner.ns, st.identity.meshIP, 10_000)]);
    assert.ok(both.every((x) => x !== null), 'no ping both ways');
    const total = Date.now() - started;
    t.diagnostic(`invite → both ways pinging in ${total} ms (up took ${r.ms} ms; first answers after ${both.join(' / ')} ms)`);
    assert.ok(total <= 10_000, `the machines pinged each other ${total} ms after \`meshd up <invite>\` started`);
    const list = await meshdJson<{ invites: { id: string; state: string; used: unknown[] }[] }>(owner, ['invite', 'list']);
    const row = list.invites.find((x) => x.id === inv.id)!;
    assert.equal(row.state, 'used up');
    assert.equal(row.used.length, 1);

    // the same single-use invite on another machine: refused, nobody added
    const again = await machine();
    const used = await upWith(again, inv.invite);
    assert.equal(used.code, 1);
    assert.equal(used.stderr.trim().split('\n').filter((l) => l.startsWith('meshd:')).length, 1, used.stderr);
    assert.match(used.stderr, /refused this invite/);
    const peers = (await daemonStatus(owner)).peers.length;
    assert.equal(peers, 1, 'only the first machine joined');
  });

  test('an expired and a revoked invite fail with a one-line reason; --qr prints a QR code', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const short = await invite(['--expires', '1s']);
    // --qr: the line, then the same invite as a QR code of block characters
    const qr = await meshdOk(owner, ['invite', '--qr']);
    const [line, blank, ...code] = qr.trimEnd().split('\n');
    assert.match(line!, /^sudo meshd up meshd-invite-v1\.[A-Za-z0-9_-]+$/);
    assert.equal(blank, '');
    assert.ok(code.length >= 15 && code.every((l) => /^[ █▀▄]+$/.test(l.split('\u001b').join('').replace(/\[[0-9;]*m/g, ''))), qr);
    const revoked = await invite();
    const r0 = await meshdJson<{ id: string }>(owner, ['invite', 'revoke', revoked.id]);
    assert.equal(r0.id, revoked.id);
    await sleep(1500);
    for (const [line, why] of [
      [short.invite, /expired/],
      [revoked.invite, /revoked/],
      ['meshd-invite-v1.nonsense', /not a meshd invite/],
    ] as const) {
      const r = await upWith(await machine(), line);
      assert.notEqual(r.code, 0);
      const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('meshd:'));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, why);
    }
    assert.equal((await daemonStatus(owner)).peers.length, 1, 'nobody else joined');
  });

  test("a member invite: the person's machine joins as a member and as their own device", async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const inv = await invite(['--member']);
    const m = await machine();
    const r = await upWith(m, inv.invite);
    assert.equal(r.code, 0, r.stderr);
    const st = await meshdJson<{ identity: { did: string; meshIP: string } }>({ ns: m.host.ns, home: m.home }, ['status']);
    assert.ok((await pingUntil(owner.ns, st.identity.meshIP, 10_000)) !== null, 'the member device is reachable');
    const list = await meshdJson<{ members?: { did: string; status: string }[]; peers: { did: string }[] }>(owner, ['peer', 'list']);
    assert.deepEqual(list.members?.map((x) => [x.did, x.status]), [[st.identity.did, 'active']]);
    assert.ok(list.peers.some((p) => p.did === st.identity.did));
    member = { ns: m.host.ns, home: m.home, meshIP: st.identity.meshIP };
  });

  test("a member invites its own device: the owner's daemon admits it, and it pings the others within 10 s", async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.ok(member, 'the member invite test ran first');
    const inv = await meshdJson<InviteJson & { memberDevices: number }>(member, ['invite']);
    assert.equal(inv.memberDevices, 5, 'the default policy: five devices per member');
    const d = await machine();
    const started = Date.now();
    const r = await upWith(d, inv.invite);
    assert.equal(r.code, 0, r.stderr);
    const st = await meshdJson<{ identity: { did: string; meshIP: string } }>({ ns: d.host.ns, home: d.home }, ['status']);
    const pings = await Promise.all([pingUntil(d.host.ns, owner.meshIP, 10_000), pingUntil(d.host.ns, member.meshIP, 10_000), pingUntil(owner.ns, st.identity.meshIP, 10_000)]);
    assert.ok(pings.every((x) => x !== null), `no ping between the member's new device and the others: ${pings.join(' / ')}`);
    const total = Date.now() - started;
    t.diagnostic(`member invite → pinging the owner and the member in ${total} ms (up took ${r.ms} ms)`);
    assert.ok(total <= 10_000, `the member's device pinged the others ${total} ms after \`meshd up <invite>\` started`);
    const memberDid = (await meshdJson<{ identity: { did: string } }>(member, ['status'])).identity.did;
    const list = await meshdJson<{ peers: { did: string; owner?: string }[] }>(owner, ['peer', 'list']);
    assert.ok(list.peers.some((p) => p.did === st.identity.did), "the owner sees the member's device");

    // the same single-use line again: refused in one line
    const again = await upWith(await machine(), inv.invite);
    assert.equal(again.code, 1);
    assert.equal(again.stderr.trim().split('\n').filter((l) => l.startsWith('meshd:')).length, 1, again.stderr);
    assert.match(again.stderr, /refused this invite/);

    // over the owner's limit, a member's device waits for `peer approve`
    const p = await meshdJson<{ memberDevices: number }>(owner, ['network', 'policy', '--member-devices', '2']);
    assert.equal(p.memberDevices, 2);
    const third = await meshdJson<InviteJson>(member, ['invite']);
    const e = await machine();
    const waiting = upWith(e, third.invite);
    const pending = await waitUntil(async () => {
      const l = await meshdJson<{ pending?: { did: string; member: string }[] }>(owner, ['peer', 'list']);
      return l.pending?.find((x) => x.member === memberDid);
    }, 30_000, 300);
    assert.ok(pending, "the member's third device is listed as waiting for approval");
    await meshdOk(owner, ['peer', 'approve', pending.did]);
    const up = await waiting;
    assert.equal(up.code, 0, up.stderr);
    const est = await meshdJson<{ identity: { did: string; meshIP: string } }>({ ns: e.host.ns, home: e.home }, ['status']);
    assert.equal(est.identity.did, pending.did);
    assert.ok((await pingUntil(e.host.ns, owner.meshIP, 10_000)) !== null, 'the approved device pings the owner');
  });
});

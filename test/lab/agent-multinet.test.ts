/**
 * One identity in two networks at once, for real: hosts on one lab internet running the real CLI.
 *
 *   a  owner of network "neta" (10.200.0.0/16, embedded DWN on a)
 *   b  owner of network "netb" (10.201.0.0/16, embedded DWN on b)
 *   h  in both: `up` into neta (advertising an exit node there), then `up INVITE` into netb —
 *      two daemons, two TUN devices, two UDP ports
 *   c  in neta only, using h as its exit node once the owner approves it
 *
 * What is checked:
 *   - h reaches a peer in each network and each reaches h; `status` lists both networks (name,
 *     id, TUN, port, prefix, peers); a command that needs one network and was not told which
 *     fails naming both
 *   - a network whose prefix overlaps a running one is refused with the --cidr advice
 *   - no forwarding between the networks: with h an approved exit node for neta (forwarding on,
 *     everything from neta's tunnel accepted), c reaches the internet through h but not netb's
 *     peers; neither does a with a route into h added by hand. Without meshd's isolation rule
 *     the same ping gets through (so the check can fail)
 *   - a second home on one host runs its own network beside (another TUN, port and DWN port)
 *   - `down --network neta` leaves netb's tunnel working; `down` stops the rest
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Internet, Lab, type Host } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { AGENT_PREREQS, DWN_PORT, addHost, dwnHealthy, meshd, meshdJson, meshdOk, pingOnce, pingUntil, waitUntil, type DaemonStatus, type MeshNode, type MeshdTarget } from './agent-helpers.js';

interface UpJson {
  identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string };
  network: { id: string; endpoint: string; name: string; meshCIDR: string };
  dataplane: { tunName: string; listenPort: number };
}

interface NetworkRow {
  network: string;
  name: string | null;
  state: string;
  tun: string | null;
  port: number | null;
  prefix: string | null;
  meshIP: string | null;
  peers: number | null;
}

const ISOLATION = ['-m', 'devgroup', '--src-group', '5283', '--dst-group', '5283', '-j', 'DROP'];

describe('meshd: one identity in two networks at once', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let a!: MeshNode;
  let b!: MeshNode;
  let c!: MeshNode;
  let hHost!: Host;
  let h!: MeshdTarget;
  /** h's mesh IPs in neta and in netb. */
  let hA!: string;
  let hB!: string;
  let netA!: UpJson;
  let netB!: UpJson;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    const internet = await Internet.create(lab);
    const owner = async (name: string, net: string, extra: string[]) => {
      const host = await addHost(internet, name);
      const home = join(lab!.workDir, `home-${name}`);
      const up = await meshdJson<UpJson>({ ns: host.ns, home, name }, ['up', '--create', net, '--dwn-listen', '0.0.0.0', ...extra]);
      return { node: { name, host, ns: host.ns, home, ...up.identity } as MeshNode, up, endpoint: `http://${host.addr}:${DWN_PORT}` };
    };
    const oa = await owner('a', 'neta', []);
    const ob = await owner('b', 'netb', ['--cidr', '10.201.0.0/16']);
    a = oa.node;
    b = ob.node;
    hHost = await addHost(internet, 'h');
    h = { ns: hHost.ns, home: join(lab.workDir, 'home-h'), name: 'h' };
    const init = await meshdJson<{ did: string }>(h, ['init']);
    await meshdOk(a, ['peer', 'add', init.did]);
    netA = await meshdJson<UpJson>(h, ['up', '--endpoint', oa.endpoint, '--anchor', a.did, '--network', oa.up.network.id, '--advertise-exit-node', '--hostname', 'exit-h']);
    // the second network by invite, while h runs the first
    const invite = await meshdJson<{ invite: string }>(b, ['invite']);
    netB = await meshdJson<UpJson>(h, ['up', invite.invite]);
    assert.equal(netB.network.id, ob.up.network.id);
    hA = netA.identity.meshIP;
    hB = netB.identity.meshIP;
    // c: in neta only, sending everything through h once the owner approves it as exit node
    const cHost = await addHost(internet, 'c');
    const cHome = join(lab.workDir, 'home-c');
    const cInit = await meshdJson<{ did: string }>({ ns: cHost.ns, home: cHome, name: 'c' }, ['init']);
    await meshdOk(a, ['peer', 'add', cInit.did]);
    const cUp = await meshdJson<UpJson>({ ns: cHost.ns, home: cHome, name: 'c' }, ['up', '--endpoint', oa.endpoint, '--anchor', a.did, '--network', oa.up.network.id, '--exit-node', 'exit-h']);
    c = { name: 'c', host: cHost, ns: cHost.ns, home: cHome, ...cUp.identity };
  });
  after(() => lab?.close());

  test('h reaches a peer in each network, and each reaches h, over two TUN devices', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.match(hA, /^10\.200\./);
    assert.match(hB, /^10\.201\./);
    assert.notEqual(netA.dataplane.tunName, netB.dataplane.tunName);
    assert.deepEqual([netA.dataplane.tunName, netB.dataplane.tunName], ['meshd0', 'meshd1']);
    assert.notEqual(netA.dataplane.listenPort, netB.dataplane.listenPort);
    for (const [ns, to, what] of [
      [hHost.ns, a.meshIP, 'h → a (neta)'],
      [hHost.ns, b.meshIP, 'h → b (netb)'],
      [a.ns, hA, 'a → h (neta)'],
      [b.ns, hB, 'b → h (netb)'],
    ] as const) {
      assert.notEqual(await pingUntil(ns, to, 15_000), null, `${what}: no answer`);
    }
  });

  test('`status` lists both networks; a command not told which network fails naming both', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const s = await meshdJson<{ source: string; networks: NetworkRow[] }>(h, ['status']);
    assert.equal(s.source, 'networks');
    const rows = Object.fromEntries(s.networks.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(rows).sort(), ['neta', 'netb']);
    assert.equal(rows.neta!.network, netA.network.id);
    assert.equal(rows.neta!.tun, 'meshd0');
    assert.equal(rows.neta!.prefix, '10.200.0.0/16');
    assert.equal(rows.netb!.tun, 'meshd1');
    assert.equal(rows.netb!.prefix, '10.201.0.0/16');
    assert.equal(rows.netb!.port, netB.dataplane.listenPort);
    assert.equal(rows.neta!.state, 'running');
    assert.ok((rows.neta!.peers ?? 0) >= 1 && (rows.netb!.peers ?? 0) >= 1, JSON.stringify(s.networks));
    const text = await meshdOk(h, ['status']);
    assert.match(text, /neta\s+\S+\s+running\s+meshd0/);
    assert.match(text, /netb\s+\S+\s+running\s+meshd1/);
    // one network in full, by name or by id
    const one = await meshdJson<DaemonStatus>(h, ['status', '--network', 'netb']);
    assert.equal(one.network?.id, netB.network.id);
    const byId = await meshdJson<DaemonStatus>(h, ['status', '--network', netA.network.id]);
    assert.equal(byId.network?.name, 'neta');
    const ambiguous = await meshd(h, ['peer', 'list']);
    assert.equal(ambiguous.code, 1, ambiguous.stdout);
    assert.match(ambiguous.stderr, /in 2 networks: "neta" \S+, "netb" \S+ — say which with --network NAME\|ID/);
    const unknown = await meshd(h, ['peer', 'list', '--network', 'nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no network called "nope"/);
  });

  test('a network whose prefix overlaps a running one is refused, with the --cidr advice', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const r = await meshd(h, ['up', '--create', 'third']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /overlaps/);
    assert.match(r.stderr, /--cidr 10\.202\.0\.0\/16/);
    const rows = (await meshdJson<{ networks: NetworkRow[] }>(h, ['status'])).networks;
    assert.equal(rows.length, 2, 'a refused network was remembered');
  });

  test('no forwarding between the networks: not for an exit node, not with a route added by hand', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    await meshdOk(a, ['route', 'approve', (await meshdJson<{ identity: { did: string } }>(h, ['status', '--network', 'neta'])).identity.did, 'exit-node']);
    // the exit node is in use: h forwards (and masquerades) what comes from neta's tunnel, and
    // c sends everything there — a public address included
    const inUse = await waitUntil(async () => {
      const forwarding = (await hHost.ns.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim() === '1';
      const s = await meshdJson<DaemonStatus>(c, ['status']);
      return forwarding && s.routing.exitNode !== null;
    }, 20_000, 250);
    assert.ok(inUse, 'h did not become the exit node of c');
    assert.notEqual(await pingUntil(c.ns, b.host.addr, 20_000), null, 'c does not reach the internet through its exit node h');
    // each of h's two daemons keeps its own copy of the isolation rule
    const copies = async () => (await hHost.ns.run(['iptables', '-w', '-t', 'mangle', '-S', 'FORWARD'])).split('\n').filter((l) => /devgroup --src-group (5283|0x14a3) --dst-group (5283|0x14a3) -j DROP/.test(l)).length;
    assert.ok(await waitUntil(async () => (await copies()) === 2, 5000), `isolation rules in h: ${await copies()}, not 2`);
    // but not netb's peers: b's mesh IP is in neither c's network nor a's
    assert.equal(await pingOnce(c.ns, b.meshIP, { waitS: 2 }), false, 'c reached netb through h');
    await a.ns.ip('route', 'add', '10.201.0.0/16', 'dev', 'meshd0');
    assert.equal(await pingOnce(a.ns, b.meshIP, { waitS: 2 }), false, 'a reached netb through h');
    // the check can fail: without the rule h's exit node would carry neta's traffic into netb
    for (let i = 0; i < 2; i++) await hHost.ns.run(['iptables', '-w', '-t', 'mangle', '-D', 'FORWARD', ...ISOLATION]);
    try {
      assert.notEqual(await pingUntil(c.ns, b.meshIP, 10_000), null, 'even without isolation c does not reach netb (the check above proves nothing)');
    } finally {
      for (let i = 0; i < 2; i++) await hHost.ns.run(['iptables', '-w', '-t', 'mangle', '-I', 'FORWARD', '1', ...ISOLATION]);
    }
    assert.equal(await pingOnce(c.ns, b.meshIP, { waitS: 2 }), false, 'c reached netb through h');
  });

  test('a second home on one host runs its own network beside the first (TUN, UDP port, DWN port)', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const other: MeshdTarget = { ns: b.ns, home: join(lab!.workDir, 'home-b2'), name: 'b2' };
    const up = await meshdJson<UpJson>(other, ['up', '--create', 'other', '--cidr', '10.202.0.0/16']);
    assert.equal(up.dataplane.tunName, 'meshd1');
    assert.notEqual(up.dataplane.listenPort, 51820);
    assert.match(up.network.endpoint, /:8788$/);
    assert.notEqual(await pingUntil(hHost.ns, b.meshIP, 10_000), null, "b's own network was disturbed");
    await meshdOk(other, ['down']);
  });

  test('`down --network neta` leaves netb working; `down` stops the rest', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const down = await meshdJson<{ stopped: boolean; pid: number }>(h, ['down', '--network', 'neta']);
    assert.equal(down.stopped, true);
    assert.notEqual((await hHost.ns.exec(['ip', 'link', 'show', 'meshd0'])).code, 0, 'meshd0 still there');
    assert.notEqual(await pingUntil(hHost.ns, b.meshIP, 5000), null, 'h → b after neta went down');
    assert.notEqual(await pingUntil(b.ns, hB, 5000), null, 'b → h after neta went down');
    const rows = (await meshdJson<{ networks: NetworkRow[] }>(h, ['status'])).networks;
    assert.deepEqual(rows.map((r) => [r.name, r.state]).sort(), [['neta', 'down'], ['netb', 'running']]);
    // alone on the host now: netb's daemon takes its isolation rule back
    assert.ok(await waitUntil(async () => !(await hHost.ns.run(['iptables', '-w', '-t', 'mangle', '-S', 'FORWARD'])).includes('DROP'), 5000), 'isolation rule left');
    // without --network: every network of the identity
    const all = await meshdJson<{ networks: Array<{ name: string; stopped: boolean }> }>(h, ['down']);
    assert.deepEqual(all.networks.map((n) => [n.name, n.stopped]), [['neta', false], ['netb', true]]);
    const links = await hHost.ns.run(['ip', '-o', 'link', 'show']);
    assert.doesNotMatch(links, /meshd\d/, `TUN devices left: ${links}`);
    assert.doesNotMatch(await hHost.ns.run(['iptables', '-w', '-t', 'mangle', '-S', 'FORWARD']), /devgroup/, 'isolation rule left');
    for (const f of ['meshd.sock', 'meshd.lock']) assert.ok(!existsSync(join(h.home, f)), `${f} left`);
  });

  test('an owner creates a second network beside its first; the home\'s one embedded DWN outlives `down` of the first', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const up = await meshdJson<UpJson>(a, ['up', '--create', 'a2', '--cidr', '10.203.0.0/16']);
    assert.equal(up.network.name, 'a2');
    assert.equal(up.dataplane.tunName, 'meshd1');
    assert.match(up.network.endpoint, /:8787$/, 'the second network does not use the home\'s DWN');
    await meshdOk(a, ['down', '--network', 'neta']);
    // the daemon of a2 starts the DWN again (neta's daemon ran it)
    assert.ok(await waitUntil(() => dwnHealthy(a.ns, 'http://127.0.0.1:8787'), 15_000, 250), 'the DWN did not come back');
    const invite = await meshdJson<{ invite: string }>(a, ['invite', '--network', 'a2']);
    assert.match(invite.invite, /^meshd-invite-v1\./);
    await meshdOk(a, ['down']);
  });
});

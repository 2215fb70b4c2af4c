/**
 * IPv6 through subnet routers and exit nodes, and an exit node reached over the relay, with the
 * real `meshd` CLI and daemons in namespaces on the lab internet (which is IPv4 only: every IPv6
 * packet between namespaces crosses the mesh or a link the test made):
 *
 *   a  owner (DWN); subnet router for 2001:db8:77::/64 ("lan": 2001:db8:77::10, no meshd)
 *   x  exit node with an IPv6 uplink (default route to "srv") and a relay (`--relay`)
 *   c  client: `up --exit-node exit-x`; a second link of its own to srv, 2001:db8:6::/64 with its
 *      IPv6 default route: the "leak" path, closed at srv until the no-leak test opens it
 *   srv  "internet" host 192.0.2.1 / 2001:db8:5::1 behind x
 *
 *   - the owner approves the IPv6 route: c reaches the LAN host by ping -6 and TCP; a forwards
 *     IPv6 and masquerades with ip6tables;
 *   - the owner approves x as exit node: c reaches srv over IPv4 and IPv6 through it;
 *   - UDP between c and x blocked: the path to x is relayed through x's relay, c still reaches
 *     srv, and the relay's TCP keeps the host's route (not looped into the tunnel);
 *   - x restarted without IPv6 uplink: c's IPv6 to srv fails even with the leak path open (no
 *     leak) while IPv4 through x, the mesh's IPv6 and the IPv6 subnet route work; with
 *     --exit-node-allow-lan-access c's own IPv6 LAN is reachable, the rest is not;
 *   - kill -9 leaves the rules; `meshd down` with no daemon restores c's IPv4 and IPv6 rules and
 *     routes exactly (the leak path then works: the block was meshd's); `down` on x, and on a
 *     after kill -9, leaves no ip6tables rule or forwarding change behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Internet, Lab, type Netns } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { AGENT_PREREQS, addHost, daemonStatus, DWN_PORT, killDaemon, meshdJson, meshdOk, pingCount, pingOnce, pingUntil, prepareJoiner, tcpTo, waitUntil, type MeshNode } from './agent-helpers.js';

const LAN6 = '2001:db8:77::/64';
const LAN6_HOST = '2001:db8:77::10';
const SRV = '192.0.2.1';
const SRV6 = '2001:db8:5::1';
/** srv's side of c's own IPv6 link (c's IPv6 LAN and default route). */
const LEAK_GW6 = '2001:db8:6::1';

interface UpJson {
  identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string };
  network: { id: string; endpoint: string };
}

type RoutingSnapshot = Record<'iptables' | 'ip6tables' | 'rules' | 'rules6' | 'routes' | 'routes6' | 'forward' | 'forward6', string>;

/** A namespace's routing state of both families: firewall, rules, routes (not the local table), forwarding. */
async function hostRouting(ns: Netns): Promise<RoutingSnapshot> {
  const fw = async (tool: string): Promise<string> =>
    (await ns.run([tool]))
      .split('\n')
      .filter((l) => l.startsWith('-A ') || /^:\S+ - /.test(l))
      .join('\n');
  const routes = async (family: string): Promise<string> =>
    (await ns.ip(family, 'route', 'show', 'table', 'all'))
      .split('\n')
      .filter((l) => !l.includes('table local') && !/\bcache\b/.test(l) && l.trim() !== '')
      .join('\n');
  return {
    iptables: await fw('iptables-save'),
    ip6tables: await fw('ip6tables-save'),
    rules: await ns.ip('-4', 'rule', 'show'),
    rules6: await ns.ip('-6', 'rule', 'show'),
    routes: await routes('-4'),
    routes6: await routes('-6'),
    forward: (await ns.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(),
    forward6: (await ns.run(['cat', '/proc/sys/net/ipv6/conf/all/forwarding'])).trim(),
  };
}

/** The device `ip route get` picks for `addr` from `ns` (through the policy rules). */
async function routeDev(ns: Netns, addr: string): Promise<string> {
  const out = await ns.ip('route', 'get', addr).catch((e: Error) => e.message);
  return /\bdev (\S+)/.exec(out)?.[1] ?? out.trim();
}

describe('meshd IPv6 subnet routes and exit nodes, and an exit node over the relay', { timeout: 400_000 }, () => {
  let lab: Lab | undefined;
  let a!: MeshNode;
  let x!: MeshNode;
  let c!: MeshNode;
  let lanNs!: Netns;
  let srvNs!: Netns;
  let xUp!: string[];
  let relayUrl!: string;
  const before_: Record<'a' | 'x' | 'c', RoutingSnapshot> = {} as never;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    const internet = await Internet.create(lab);
    // a, with the IPv6 LAN behind it on eth1
    const aHost = await addHost(internet, 'a');
    lanNs = await lab.addNamespace('lan6');
    await lab.veth(aHost.ns, 'eth1', lanNs, 'eth0');
    await aHost.ns.ip('-6', 'addr', 'add', '2001:db8:77::1/64', 'dev', 'eth1', 'nodad');
    await lanNs.ip('-6', 'addr', 'add', `${LAN6_HOST}/64`, 'dev', 'eth0', 'nodad');
    before_.a = await hostRouting(aHost.ns);
    const aHome = join(lab.workDir, 'home-a');
    const up = await meshdJson<UpJson>({ ns: aHost.ns, home: aHome, name: 'a' }, ['up', '--create', 'lab6', '--dwn-listen', '0.0.0.0', '--advertise-routes', LAN6]);
    a = { name: 'a', host: aHost, ns: aHost.ns, home: aHome, ...up.identity };
    const endpoint = `http://${aHost.addr}:${DWN_PORT}`;
    const joinArgs = ['--endpoint', endpoint, '--anchor', a.did, '--network', up.network.id];

    // x: srv behind it, its IPv6 uplink (default route) through srv, and a relay
    const px = await prepareJoiner({ internet, owner: a }, 'x');
    srvNs = await lab.addNamespace('srv');
    await lab.veth(px.host.ns, 'eth1', srvNs, 'eth0');
    await px.host.ns.ip('addr', 'add', '192.0.2.254/24', 'dev', 'eth1');
    await px.host.ns.ip('-6', 'addr', 'add', '2001:db8:5::254/64', 'dev', 'eth1', 'nodad');
    await px.host.ns.ip('-6', 'route', 'add', 'default', 'via', SRV6, 'dev', 'eth1');
    await srvNs.ip('addr', 'add', `${SRV}/24`, 'dev', 'eth0');
    await srvNs.ip('-6', 'addr', 'add', `${SRV6}/64`, 'dev', 'eth0', 'nodad');
    before_.x = await hostRouting(px.host.ns);
    xUp = ['up', ...joinArgs, '--advertise-exit-node', '--hostname', 'exit-x', '--relay', `${px.host.addr}:3340`];
    const rx = await meshdJson<UpJson>({ ns: px.host.ns, home: px.home, name: 'x' }, xUp);
    x = { name: 'x', host: px.host, ns: px.host.ns, home: px.home, ...rx.identity };

    // c, with its own IPv6 link to srv (closed at srv for now) and its IPv6 default route there
    const pc = await prepareJoiner({ internet, owner: a }, 'c');
    await lab.veth(pc.host.ns, 'eth1', srvNs, 'eth1');
    await pc.host.ns.ip('-6', 'addr', 'add', '2001:db8:6::2/64', 'dev', 'eth1', 'nodad');
    await pc.host.ns.ip('-6', 'route', 'add', 'default', 'via', LEAK_GW6, 'dev', 'eth1');
    await srvNs.ip('-6', 'addr', 'add', `${LEAK_GW6}/64`, 'dev', 'eth1', 'nodad');
    await srvNs.run(['ip6tables', '-w', '-A', 'INPUT', '-i', 'eth1', '!', '-p', 'ipv6-icmp', '-j', 'DROP']);
    await srvNs.run(['ip6tables', '-w', '-A', 'INPUT', '-i', 'eth1', '-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request', '-j', 'DROP']);
    before_.c = await hostRouting(pc.host.ns);
    const rc = await meshdJson<UpJson>({ ns: pc.host.ns, home: pc.home, name: 'c' }, ['up', ...joinArgs, '--exit-node', 'exit-x']);
    c = { name: 'c', host: pc.host, ns: pc.host.ns, home: pc.home, ...rc.identity };

    // x's relay: proposed by x, approved by the owner, then used by every node
    relayUrl = (await daemonStatus(x)).relayServer?.url ?? '';
    assert.match(relayUrl, /^https:\/\//);
    const proposed = await waitUntil(async () => (await meshdJson<{ proposals: { url: string }[] }>(a, ['relay', 'proposals'])).proposals.some((p) => p.url === relayUrl), 20_000, 500);
    assert.ok(proposed, `x's relay ${relayUrl} was not proposed`);
    await meshdOk(a, ['relay', 'approve', relayUrl]);
    for (const [from, to] of [[c, a], [c, x], [a, x]] as const) {
      assert.ok((await pingUntil(from.ns, to.meshIP, 20_000)) !== null, `${from.name} cannot ping ${to.name} over the mesh`);
      assert.ok((await pingUntil(from.ns, to.meshIP6, 10_000)) !== null, `${from.name} cannot ping ${to.name}'s mesh IPv6`);
    }
    const relayUp = await waitUntil(async () => (await daemonStatus(c)).dataplane?.relays.some((r) => r.url === relayUrl && r.state === 'connected'), 30_000, 250);
    assert.ok(relayUp, 'c is not connected to x\'s relay');
  });
  after(() => lab?.close());

  test('an IPv6 LAN host behind a subnet router answers ping -6 and TCP from a mesh node; the router forwards and masquerades IPv6', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.equal(await pingOnce(c.ns, LAN6_HOST), false, 'LAN host answered before the route was approved');
    await meshdOk(a, ['route', 'approve', a.did, LAN6]);
    assert.ok((await pingUntil(c.ns, LAN6_HOST, 15_000)) !== null, 'IPv6 LAN host does not answer over the subnet route');
    const tcp = await tcpTo(c, lanNs, LAN6_HOST, 1_000_000, 'routes6');
    assert.equal(tcp.bytes, 1_000_000);
    assert.equal(tcp.received, tcp.sent);
    const r = await hostRouting(a.ns);
    assert.match(r.ip6tables, /-A meshd-fwd-meshd0 -d 2001:db8:77::\/64 -i meshd0 -j ACCEPT/);
    assert.match(r.ip6tables, /-A meshd-nat-meshd0 -s fd0d:e100:d3c5::\/48 -d 2001:db8:77::\/64 -j MASQUERADE/);
    assert.equal(r.forward6, '1');
    // IPv6 routes only: IPv4 forwarding and iptables untouched
    assert.equal(r.iptables, before_.a.iptables);
    assert.equal(r.forward, before_.a.forward);
    assert.deepEqual((await daemonStatus(a)).routing.routes, [LAN6]);
  });

  test('exit node with IPv6: c reaches srv over IPv4 and IPv6 through x only', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.equal(await pingOnce(c.ns, SRV6), false, 'srv answered IPv6 before the exit node was approved');
    await meshdOk(a, ['route', 'approve', x.did, 'exit-node']);
    assert.ok((await pingUntil(c.ns, SRV6, 15_000)) !== null, 'srv does not answer IPv6 through the exit node');
    assert.ok((await pingUntil(c.ns, SRV, 5_000)) !== null, 'srv does not answer IPv4 through the exit node');
    const s = await daemonStatus(c);
    assert.equal(s.routing.exitNode, x.did);
    assert.equal(s.routing.exitNodeIPv6, 'exit-node');
    assert.equal((await daemonStatus(x)).routing.advertisesExitNodeIPv6, true);
    assert.match(await c.ns.ip('-6', 'rule', 'show'), /5230:\s+from all lookup 5282/);
    assert.match(await c.ns.ip('-6', 'rule', 'show'), /5210:\s+from all (fwmark 0x5282|ipproto udp sport \d+) lookup main/);
    assert.equal(await routeDev(c.ns, SRV6), 'meshd0');
    const xr = await hostRouting(x.ns);
    assert.match(xr.ip6tables, /-A meshd-nat-meshd0 -s fd0d:e100:d3c5::\/48 ! -o meshd0 -j MASQUERADE/);
    assert.equal(xr.forward6, '1');
    const tcp = await tcpTo(c, srvNs, SRV6, 1_000_000, 'routes6');
    assert.equal(tcp.received, tcp.sent);
    // the mesh's IPv6 and the IPv6 subnet route still work alongside
    const [toSrv6, toA6, toLan6] = await Promise.all([pingCount(c.ns, SRV6, 5), pingCount(c.ns, a.meshIP6, 5), pingCount(c.ns, LAN6_HOST, 5)]);
    assert.deepEqual([toSrv6, toA6, toLan6], [5, 5, 5]);
  });

  test('exit node over the relay: UDP between c and x blocked, c still reaches srv; the relay\'s TCP keeps the host route', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const xAddr = x.host.addr;
    const block = [
      ['OUTPUT', '-p', 'udp', '-d', xAddr, '-j', 'DROP'],
      ['INPUT', '-p', 'udp', '-s', xAddr, '-j', 'DROP'],
    ];
    for (const r of block) await c.ns.iptables('-I', ...r);
    try {
      const relayed = await waitUntil(async () => (await daemonStatus(c)).peers.find((p) => p.did === x.did)?.path === 'relay', 60_000, 250);
      assert.ok(relayed, 'the path to x did not move to the relay');
      // the relay (on x) is reached by the host's own route, srv through the tunnel
      assert.equal(await routeDev(c.ns, xAddr), 'eth0', 'the relay connection would enter the tunnel');
      assert.match(await c.ns.ip('-4', 'route', 'show', 'table', '5282'), new RegExp(`throw ${xAddr.replace(/\./g, '\\.')}`));
      assert.equal(await routeDev(c.ns, SRV), 'meshd0');
      const paths = async (): Promise<string> => JSON.stringify((await daemonStatus(c)).peers.map((p) => [p.hostname, p.path, p.endpoint]));
      t.diagnostic(`c's paths before: ${await paths()}`);
      const [toSrv, toSrv6, toA] = await Promise.all([pingCount(c.ns, SRV, 10), pingCount(c.ns, SRV6, 10), pingCount(c.ns, a.meshIP, 10)]);
      assert.deepEqual([toSrv, toSrv6, toA], [10, 10, 10], `pings lost through the relayed exit node; c's paths after: ${await paths()}`);
      const tcp = await tcpTo(c, srvNs, SRV, 500_000, 'routes6');
      assert.equal(tcp.received, tcp.sent);
      const s = await daemonStatus(c);
      assert.equal(s.peers.find((p) => p.did === x.did)?.path, 'relay', 'the transfer did not go over the relay');
      assert.ok(s.dataplane?.relays.some((r) => r.url === relayUrl && r.state === 'connected'), 'relay connection lost');
      // a control-plane round trip while everything goes through x
      await meshdJson(c, ['route', 'list']);
    } finally {
      for (const r of block) await c.ns.iptables('-D', ...r);
    }
  });

  test('exit node without IPv6: c\'s IPv6 beyond the mesh is blocked (no leak), IPv4 works; LAN access keeps its own IPv6 LAN', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    await meshdOk(x, ['down']);
    // `down` on the exit node took back its IPv6 forwarding and ip6tables chains
    const xDown = await hostRouting(x.ns);
    assert.equal(xDown.ip6tables, before_.x.ip6tables, 'x: ip6tables not restored by down');
    assert.equal(xDown.forward6, before_.x.forward6, 'x: IPv6 forwarding not restored by down');
    await x.ns.ip('-6', 'route', 'del', 'default');
    await meshdOk(x, xUp);
    assert.equal((await daemonStatus(x)).routing.advertisesExitNodeIPv6, false);
    // the leak path opens: c's own IPv6 default route now reaches srv
    await srvNs.run(['ip6tables', '-w', '-F', 'INPUT']);
    const blocked = await waitUntil(async () => (await daemonStatus(c)).routing.exitNodeIPv6 === 'blocked', 30_000, 250);
    assert.ok(blocked, 'c does not say its IPv6 is blocked');
    assert.ok((await pingUntil(c.ns, SRV, 20_000)) !== null, 'IPv4 through the exit node stopped');
    assert.equal(await pingCount(c.ns, SRV6, 3, { waitS: 1 }), 0, 'IPv6 leaked outside the tunnel');
    assert.match(await routeDev(c.ns, SRV6), /unreachable|No route to host/i);
    // the mesh's own IPv6 and the IPv6 subnet route are not blocked
    assert.ok((await pingUntil(c.ns, a.meshIP6, 10_000)) !== null, 'mesh IPv6 blocked too');
    assert.ok((await pingUntil(c.ns, LAN6_HOST, 10_000)) !== null, 'IPv6 subnet route blocked too');
    const log = readFileSync(join(c.home, 'meshd.log'), 'utf8');
    assert.match(log, /exit-node\.ipv6-blocked/, 'the log does not say IPv6 is blocked');
    // the exit routes were replaced in place (guarded), and the guard is gone again
    assert.doesNotMatch(log, /routing\.apply-failed/);
    for (const f of ['-4', '-6']) assert.doesNotMatch(await c.ns.ip(f, 'rule', 'show'), /^5200:/m, `guard rule left (${f})`);
    assert.match(await c.ns.ip('-6', 'rule', 'show'), /^5230:\s+from all lookup 5282/m);
    // x has nothing to forward over IPv6 now
    assert.doesNotMatch((await hostRouting(x.ns)).ip6tables, /meshd-/);

    // --exit-node-allow-lan-access: c's own IPv6 LAN (srv's leak-side address) yes, beyond it no
    await meshdOk(c, ['down']);
    await meshdOk(c, ['up', '--exit-node', 'exit-x', '--exit-node-allow-lan-access']);
    assert.ok(await waitUntil(async () => (await daemonStatus(c)).routing.exitNodeIPv6 === 'blocked', 30_000, 250), 'blocked IPv6 not applied after restart');
    assert.ok((await pingUntil(c.ns, LEAK_GW6, 10_000)) !== null, 'own IPv6 LAN not reachable with LAN access');
    assert.equal(await pingCount(c.ns, SRV6, 3, { waitS: 1 }), 0, 'IPv6 beyond the LAN leaked with LAN access');
    assert.ok((await pingUntil(c.ns, SRV, 15_000)) !== null, 'IPv4 through the exit node stopped');
  });

  test('kill -9 leaves c\'s and a\'s rules; `down` restores c\'s IPv4 and IPv6 routing exactly; a and x leave no ip6tables rule', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    await killDaemon(c);
    assert.match(await c.ns.ip('-6', 'rule', 'show'), /lookup 5282/, 'no IPv6 leftover after kill -9?');
    const r = await meshdJson<{ running: boolean; routingStepsUndone: number }>(c, ['down']);
    assert.equal(r.running, false);
    assert.ok(r.routingStepsUndone > 0);
    const now = await hostRouting(c.ns);
    for (const k of ['rules', 'rules6', 'routes', 'routes6', 'iptables', 'ip6tables'] as const) assert.equal(now[k], before_.c[k], `c: ${k} not restored`);
    // the leak path works without meshd: the block was meshd's
    assert.ok((await pingUntil(c.ns, SRV6, 10_000)) !== null, 'srv not reachable over c\'s own IPv6 after down');

    // the subnet router killed: its IPv6 forwarding and ip6tables chains stay until `down`
    await killDaemon(a);
    assert.match((await hostRouting(a.ns)).ip6tables, /meshd-fwd-meshd0/, 'nothing left on a after kill -9?');
    for (const n of [a, x]) {
      await meshdOk(n, ['down']);
      const after_ = await hostRouting(n.ns);
      const was = n === a ? before_.a : before_.x;
      for (const k of ['ip6tables', 'iptables', 'forward', 'forward6', 'rules6'] as const) assert.equal(after_[k], was[k], `${n.name}: ${k} not restored`);
    }
  });
});

/**
 * Subnet routers and exit nodes for real: three hosts on one lab internet running the real CLI.
 *
 *   a  owner (embedded DWN), subnet router: `up --advertise-routes 192.168.77.0/24,192.168.78.0/24`,
 *      with a LAN namespace behind it (192.168.77.10 and 192.168.78.10, no default route: it
 *      can answer the mesh only through a's masquerading)
 *   x  exit node: `up --advertise-exit-node`, the only host that reaches "srv" (192.0.2.1)
 *   c  client: `up --exit-node x`
 *
 *   - the owner approves 192.168.77.0/24 only: c reaches the LAN host by ping and TCP; the
 *     unapproved 192.168.78.0/24 is not used (not even with a route forced into c's TUN);
 *   - the owner approves x as exit node: c reaches srv through it, its tunnel keeps working (no
 *     loop: the DWN, the mesh and srv answer together); after kill -9 the next `up` recovers and
 *     applies its rules once; after `down` c's rules, table and default route are as before;
 *   - kill -9 of the exit node leaves its forwarding rules; `meshd down` with no daemon undoes them;
 *   - `down` on the router leaves no iptables rule, route or sysctl change behind;
 *   - with `--snat-subnet-routes=false` the LAN host answers only once it has a route back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Internet, Lab, type Netns } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import {
  AGENT_PREREQS,
  addHost,
  daemonStatus,
  killDaemon,
  DWN_PORT,
  meshdJson,
  meshdOk,
  pingCount,
  pingOnce,
  pingUntil,
  prepareJoiner,
  tcpTo,
  waitUntil,
  type MeshNode,
} from './agent-helpers.js';

const LAN = '192.168.77.0/24';
const LAN_UNAPPROVED = '192.168.78.0/24';
const LAN_HOST = '192.168.77.10';
const LAN_HOST_UNAPPROVED = '192.168.78.10';
const SRV = '192.0.2.1';

interface UpJson {
  identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string };
  network: { id: string; endpoint: string };
}

/** What routing state of a namespace we compare before and after: firewall, rules, routes, forwarding. */
async function hostRouting(ns: Netns): Promise<{ iptables: string; rules: string; routes: string; forward: string }> {
  const save = await ns.run(['iptables-save']);
  const iptables = save
    .split('\n')
    // rules and user chains (a table shows up empty once anything loaded it: that is no change)
    .filter((l) => l.startsWith('-A ') || /^:\S+ - /.test(l))
    .join('\n');
  const rules = await ns.ip('-4', 'rule', 'show');
  // every table but local (its broadcast routes come and go with the TUN's addresses)
  const routes = (await ns.ip('-4', 'route', 'show', 'table', 'all'))
    .split('\n')
    .filter((l) => !l.includes('table local') && l.trim() !== '')
    .join('\n');
  const forward = (await ns.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim();
  return { iptables, rules, routes, forward };
}

describe('meshd subnet routers and exit nodes', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let a!: MeshNode;
  let x!: MeshNode;
  let c!: MeshNode;
  let lanNs!: Netns;
  let srvNs!: Netns;
  let aBefore!: Awaited<ReturnType<typeof hostRouting>>;
  let xBefore!: Awaited<ReturnType<typeof hostRouting>>;
  let cBefore!: Awaited<ReturnType<typeof hostRouting>>;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    const internet = await Internet.create(lab);
    // a, with the LAN behind it on eth1
    const aHost = await addHost(internet, 'a');
    lanNs = await lab.addNamespace('lan');
    await lab.veth(aHost.ns, 'eth1', lanNs, 'eth0');
    await aHost.ns.ip('addr', 'add', '192.168.77.1/24', 'dev', 'eth1');
    await aHost.ns.ip('addr', 'add', '192.168.78.1/24', 'dev', 'eth1');
    await lanNs.ip('addr', 'add', `${LAN_HOST}/24`, 'dev', 'eth0');
    await lanNs.ip('addr', 'add', `${LAN_HOST_UNAPPROVED}/24`, 'dev', 'eth0');
    aBefore = await hostRouting(aHost.ns);
    const aHome = join(lab.workDir, 'home-a');
    const up = await meshdJson<UpJson>({ ns: aHost.ns, home: aHome, name: 'a' }, [
      'up', '--create', 'lab', '--dwn-listen', '0.0.0.0', '--advertise-routes', `${LAN},${LAN_UNAPPROVED}`,
    ]);
    a = { name: 'a', host: aHost, ns: aHost.ns, home: aHome, ...up.identity };
    const mesh = { internet, owner: a };
    const endpoint = `http://${aHost.addr}:${DWN_PORT}`;
    const join_ = async (name: string, extra: string[]): Promise<MeshNode> => {
      const p = await prepareJoiner(mesh, name);
      const r = await meshdJson<UpJson>({ ns: p.host.ns, home: p.home, name }, ['up', '--endpoint', endpoint, '--anchor', a.did, '--network', up.network.id, ...extra]);
      return { name, host: p.host, ns: p.host.ns, home: p.home, ...r.identity };
    };
    // x, the only one that reaches srv
    x = await join_('x', ['--advertise-exit-node', '--hostname', 'exit-x']);
    srvNs = await lab.addNamespace('srv');
    await lab.veth(x.ns, 'eth1', srvNs, 'eth0');
    await x.ns.ip('addr', 'add', '192.0.2.254/24', 'dev', 'eth1');
    await srvNs.ip('addr', 'add', `${SRV}/24`, 'dev', 'eth0');
    const cHost = await addHost(internet, 'c');
    cBefore = await hostRouting(cHost.ns);
    // x's state before its exit node is approved (meshd changes nothing on it until then)
    xBefore = await hostRouting(x.ns);
    c = await (async () => {
      const name = 'c';
      const home = join(lab!.workDir, 'home-c');
      const init = await meshdJson<{ did: string }>({ ns: cHost.ns, home, name }, ['init']);
      await meshdOk(a, ['peer', 'add', init.did]);
      const r = await meshdJson<UpJson>({ ns: cHost.ns, home, name }, ['up', '--endpoint', endpoint, '--anchor', a.did, '--network', up.network.id, '--exit-node', 'exit-x']);
      return { name, host: cHost, ns: cHost.ns, home, ...r.identity };
    })();
    for (const [from, to] of [[c, a], [c, x], [a, x]] as const) {
      assert.ok((await pingUntil(from.ns, to.meshIP, 20_000)) !== null, `${from.name} cannot ping ${to.name} over the mesh`);
    }
  });
  after(() => lab?.close());

  test('advertised but unapproved routes are not used', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const list = await meshdJson<{ routes: { did: string; advertised: string[]; inUse: string[]; advertisesExitNode: boolean }[] }>(a, ['route', 'list']);
    const ra = list.routes.find((r) => r.did === a.did);
    assert.deepEqual(ra?.advertised, [LAN, LAN_UNAPPROVED]);
    assert.deepEqual(ra?.inUse, []);
    assert.equal(list.routes.find((r) => r.did === x.did)?.advertisesExitNode, true);
    const human = await meshdOk(a, ['route', 'list']);
    assert.match(human, /192\.168\.77\.0\/24\s+waiting for approval/);
    assert.match(human, /exit node\s+waiting for approval/);
    assert.equal(await pingOnce(c.ns, LAN_HOST), false, 'LAN host answered before any approval');
    assert.doesNotMatch(await c.ns.ip('-4', 'route', 'show'), /192\.168\.7[78]/);
    assert.doesNotMatch((await hostRouting(a.ns)).iptables, /meshd-/, 'router rules installed before approval');
  });

  test('an approved route: a LAN host without meshd answers ping and TCP from a mesh node; the unapproved one stays unused', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const r = await meshdJson<{ changed: boolean; advertised: boolean }>(a, ['route', 'approve', a.did, LAN]);
    assert.equal(r.changed, true);
    assert.equal(r.advertised, true);
    assert.ok((await pingUntil(c.ns, LAN_HOST, 15_000)) !== null, 'LAN host does not answer over the subnet route');
    const tcp = await tcpTo(c, lanNs, LAN_HOST, 2_000_000);
    assert.equal(tcp.bytes, 2_000_000);
    assert.equal(tcp.received, tcp.sent);
    // the other advertised prefix is not routed, even with a route forced into c's TUN
    assert.doesNotMatch(await c.ns.ip('-4', 'route', 'show'), /192\.168\.78/);
    await c.ns.ip('route', 'add', LAN_UNAPPROVED, 'dev', 'meshd0');
    try {
      assert.equal(await pingCount(c.ns, LAN_HOST_UNAPPROVED, 3, { waitS: 1 }), 0, 'the unapproved route was used');
    } finally {
      await c.ns.ip('route', 'del', LAN_UNAPPROVED, 'dev', 'meshd0');
    }
    const s = await daemonStatus(a);
    assert.deepEqual(s.routing.routes, [LAN]);
    assert.match(await meshdOk(c, ['route', 'list']), /192\.168\.77\.0\/24\s+approved, in use\n\s+192\.168\.78\.0\/24\s+waiting for approval/);
    // the router's own `meshd status` shows what it offers and what the owner approved
    assert.match(await meshdOk(a, ['status']), /^ {2}192\.168\.77\.0\/24\s+approved, routed\n {2}192\.168\.78\.0\/24\s+waiting for the owner$/m);
  });

  test('exit node: c reaches a host only x reaches, its tunnel keeps working, and `down` restores its routing', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.equal(await pingOnce(c.ns, SRV), false, 'srv answered c before the exit node was approved');
    assert.doesNotMatch(await c.ns.ip('-4', 'rule', 'show'), /5282/, 'exit rules before approval');
    await meshdOk(a, ['route', 'approve', x.did, 'exit-node']);
    assert.ok((await pingUntil(c.ns, SRV, 15_000)) !== null, 'srv does not answer c through the exit node');
    const rules = await c.ns.ip('-4', 'rule', 'show');
    assert.match(rules, /5230:\s+from all lookup 5282/);
    // the tunnel's own UDP: by SO_MARK when the addon can set it, else by source port
    assert.match(rules, /5210:\s+from all (fwmark 0x5282|ipproto udp sport \d+) lookup main/);
    // no loop: the tunnel's own UDP, the DWN's TCP, the mesh and the exit all work together
    const [toSrv, toA, toLan] = await Promise.all([pingCount(c.ns, SRV, 10), pingCount(c.ns, a.meshIP, 10), pingCount(c.ns, LAN_HOST, 10)]);
    assert.deepEqual([toSrv, toA, toLan], [10, 10, 10], 'pings lost with the exit node in use');
    const s = await daemonStatus(c);
    assert.equal(s.routing.exitNode, x.did);
    const human = await meshdOk(c, ['status']);
    assert.ok(human.split('\n').some((l) => l.startsWith('Exit node: ') && l.includes(`(${x.meshIP}, `) && l.endsWith('all traffic goes through it')), human);
    const px = s.peers.find((p) => p.did === x.did);
    assert.equal(px?.path, 'direct', 'the tunnel to the exit node is not direct');
    const tcp = await tcpTo(c, srvNs, SRV, 1_000_000);
    assert.equal(tcp.received, tcp.sent);
    // a control-plane round trip from c while its traffic goes through x
    await meshdJson(c, ['route', 'list']);

    // kill -9: the rules stay behind; the next `up` undoes them and applies its own, once
    await killDaemon(c);
    assert.match(await c.ns.ip('-4', 'rule', 'show'), /lookup 5282/, 'no leftover to recover from after kill -9?');
    await meshdOk(c, ['up', '--exit-node', 'exit-x']);
    assert.ok((await pingUntil(c.ns, SRV, 15_000)) !== null, 'srv does not answer c after the restart');
    const again = await c.ns.ip('-4', 'rule', 'show');
    assert.equal(again.match(/lookup 5282/g)?.length, 1, `rules applied twice:\n${again}`);
    assert.equal(again.match(/^5210:/gm)?.length, 1, `rules applied twice:\n${again}`);

    await meshdOk(c, ['down']);
    const after_ = await hostRouting(c.ns);
    assert.equal(after_.rules, cBefore.rules, 'ip rules not restored');
    assert.equal(after_.routes, cBefore.routes, 'routes (default route, table 5282) not restored');
    assert.equal(after_.iptables, cBefore.iptables);
    assert.equal(await pingOnce(c.ns, SRV), false, 'srv reachable without the exit node');
  });

  test('kill -9 of the exit node leaves its forwarding rules; `meshd down` with no daemon undoes them', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.match((await hostRouting(x.ns)).iptables, /meshd-nat-meshd0/);
    await killDaemon(x);
    const left = await hostRouting(x.ns);
    assert.match(left.iptables, /meshd-fwd-meshd0/, 'nothing left to clean up after kill -9?');
    const r = await meshdJson<{ running: boolean; routingStepsUndone: number }>(x, ['down']);
    assert.equal(r.running, false);
    assert.ok(r.routingStepsUndone > 0);
    const now = await hostRouting(x.ns);
    assert.equal(now.iptables, xBefore.iptables);
    assert.equal(now.forward, xBefore.forward);
    assert.equal(now.rules, xBefore.rules);
  });

  test('`down` on the subnet router leaves no iptables rule, route or sysctl change behind', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const during = await hostRouting(a.ns);
    assert.match(during.iptables, /-A meshd-fwd-meshd0 -d 192\.168\.77\.0\/24 -i meshd0 -j ACCEPT/);
    assert.doesNotMatch(during.iptables, /192\.168\.78/, 'rules for the unapproved route');
    assert.equal(during.forward, '1');
    await meshdOk(a, ['down']);
    await sleep(200);
    const now = await hostRouting(a.ns);
    assert.equal(now.iptables, aBefore.iptables);
    assert.equal(now.forward, aBefore.forward);
    assert.equal(now.rules, aBefore.rules);
    assert.equal(now.routes, aBefore.routes);
  });

  test('--snat-subnet-routes=false: the LAN sees mesh addresses and answers only with a route back', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    await meshdOk(a, ['up', '--advertise-routes', LAN, '--snat-subnet-routes=false']);
    await meshdOk(c, ['up']);
    assert.ok((await pingUntil(c.ns, a.meshIP, 20_000)) !== null, 'c cannot reach a after both restarted');
    await waitUntil(async () => (await daemonStatus(a)).routing.routes.length > 0, 10_000);
    const rules = (await hostRouting(a.ns)).iptables;
    assert.doesNotMatch(rules, /MASQUERADE/);
    assert.match(rules, /-A meshd-nat-meshd0 -d 192\.168\.77\.0\/24 -j RETURN/);
    assert.equal(await pingCount(c.ns, LAN_HOST, 3, { waitS: 1 }), 0, 'answered without a route back: masqueraded?');
    await lanNs.ip('route', 'add', '10.200.0.0/16', 'via', '192.168.77.1');
    assert.ok((await pingUntil(c.ns, LAN_HOST, 10_000)) !== null, 'LAN host with a route back does not answer');
    await meshdOk(c, ['down']);
    await meshdOk(a, ['down']);
    assert.equal((await hostRouting(a.ns)).iptables, aBefore.iptables);
  });
});

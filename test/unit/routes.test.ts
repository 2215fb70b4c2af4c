/**
 * Subnet routes and exit nodes without a network: prefix validation, advertised ∩ approved,
 * the record fields, map → allowed IPs, the host rules the routing module would install, the
 * undo journal, ACL rules naming a route prefix, and exit node selection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshdError } from '../../src/errors.js';
import { deriveDeviceKeys } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { EXIT_ROUTE, parseAdvertisedRoutes, parseApprovableRoute, routesInUse, subnetRouteProblem } from '../../src/control/routes.js';
import { validateRecord } from '../../src/control/records.js';
import { compileAcl, filterDecision, type AclNode } from '../../src/control/acl.js';
import { configFromMap } from '../../src/daemon/map-to-config.js';
import { pickExitNode, tunRoutes6 } from '../../src/daemon/agent-routing.js';
import { routerRules, routesFamily } from '../../src/daemon/routing/router.js';
import { exitRoutes, exitRules } from '../../src/daemon/routing/exit-client.js';
import { Journal, journalPath, readJournal } from '../../src/daemon/routing/journal.js';
import { formatPrefix } from '../../src/util/prefix.js';
import type { MapPeer, NetworkMap } from '../../src/control/netmap.js';

const MESH = ['10.200.0.0/16', 'fd0d:e100:d3c5::/48'];

test('subnet routes: strict prefixes, no host bits, no default route, nothing of the mesh or special ranges', () => {
  for (const ok of ['192.168.1.0/24', '10.1.0.0/16', '172.16.0.0/12', '203.0.113.7/32', '2001:db8:1::/48']) assert.equal(subnetRouteProblem(ok, MESH), null, ok);
  const bad: Record<string, RegExp> = {
    '192.168.1.1/24': /host bits/,
    '192.168.1.0': /ADDRESS\/LENGTH/,
    '0.0.0.0/0': /exit node/,
    '::/0': /exit node/,
    '10.200.5.0/24': /mesh prefix 10\.200\.0\.0\/16/,
    '10.0.0.0/8': /mesh prefix/, // contains the mesh
    'fd0d:e100:d3c5:1::/64': /mesh prefix fd0d/,
    '127.0.0.0/8': /loopback/,
    '169.254.1.0/24': /link-local/,
    '224.0.0.0/4': /multicast/,
    'fe80::/64': /link-local/,
    '192.168.1.0/33': /not an IP prefix/,
    'example.com/24': /not an IP prefix/,
    '2001:DB8::/32': /canonical/,
  };
  for (const [text, why] of Object.entries(bad)) assert.match(subnetRouteProblem(text, MESH) ?? 'accepted', why, text);
});

test('--advertise-routes: a list, trimmed and de-duplicated; the first bad one is named', () => {
  assert.deepEqual(parseAdvertisedRoutes(' 192.168.1.0/24, 10.1.0.0/16,192.168.1.0/24,', MESH), ['192.168.1.0/24', '10.1.0.0/16']);
  assert.throws(() => parseAdvertisedRoutes('192.168.1.0/24,192.168.2.1/24', MESH), (e: unknown) => e instanceof MeshdError && e.code === 'E_USAGE' && /192\.168\.2\.1\/24.*host bits/.test(e.message));
  assert.throws(() => parseAdvertisedRoutes(Array.from({ length: 65 }, (_, i) => `192.168.${i}.0/24`).join(','), MESH), /at most 64/);
  assert.equal(parseApprovableRoute('exit-node', MESH), EXIT_ROUTE);
  assert.equal(parseApprovableRoute('0.0.0.0/0', MESH), EXIT_ROUTE);
  assert.throws(() => parseApprovableRoute('10.200.0.0/24', MESH), /mesh prefix/);
});

test('only routes both advertised and approved are in use; an exit node needs both too', () => {
  assert.deepEqual(routesInUse(['192.168.2.0/24', '192.168.1.0/24'], false, ['192.168.1.0/24', '10.9.0.0/16'], MESH), { routes: ['192.168.1.0/24'], exitNode: false });
  assert.deepEqual(routesInUse(undefined, true, [EXIT_ROUTE], MESH), { routes: [], exitNode: true });
  assert.deepEqual(routesInUse(['192.168.1.0/24'], true, undefined, MESH), { routes: [], exitNode: false });
  assert.deepEqual(routesInUse(undefined, false, [EXIT_ROUTE], MESH), { routes: [], exitNode: false });
  // a route the mesh took later (or a record written by something else) is never used
  assert.deepEqual(routesInUse(['10.200.1.0/24'], false, ['10.200.1.0/24'], MESH).routes, []);
});

test('records: nodeInfo.routes are subnet prefixes; node.approvedRoutes may hold 0.0.0.0/0', () => {
  const info = { hostname: 'r', os: 'linux', version: '1', capabilities: ['subnet-router', 'exit-node'], routes: ['192.168.1.0/24'] };
  assert.deepEqual(validateRecord('nodeInfo', info, 'write').routes, ['192.168.1.0/24']);
  for (const routes of [['0.0.0.0/0'], ['192.168.1.1/24'], ['192.168.1.0/24', '192.168.1.0/24'], ['x']]) {
    assert.throws(() => validateRecord('nodeInfo', { ...info, routes }, 'write'), (e: unknown) => e instanceof MeshdError && e.code === 'E_RECORD_INVALID', JSON.stringify(routes));
  }
  const did = formatDidJwk(deriveDeviceKeys(new Uint8Array(32).fill(7)).edPublic);
  const node = { did, meshIP: '10.200.0.2', meshIP6: 'fd0d:e100:d3c5::2', owner: did, status: 'active', addedAt: '2026-01-01T00:00:00Z' };
  assert.deepEqual(validateRecord('node', { ...node, approvedRoutes: ['0.0.0.0/0', '192.168.1.0/24'] }, 'write').approvedRoutes, ['0.0.0.0/0', '192.168.1.0/24']);
  assert.throws(() => validateRecord('node', { ...node, approvedRoutes: ['::/0'] }, 'write'), /route prefix/);
  assert.equal(validateRecord('node', node, 'write').approvedRoutes, undefined);
  // an exit node says whether it carries IPv6; anything but a boolean is refused
  assert.equal(validateRecord('nodeInfo', { ...info, exitNodeIPv6: true }, 'write').exitNodeIPv6, true);
  assert.throws(() => validateRecord('nodeInfo', { ...info, exitNodeIPv6: 'yes' }, 'write'), (e: unknown) => e instanceof MeshdError && e.code === 'E_RECORD_INVALID');
});

test('IPv6 subnet routes: strict like IPv4 (no host bits, not the mesh /48, not ::/0, canonical)', () => {
  assert.deepEqual(parseAdvertisedRoutes('2001:db8:77::/64,192.168.1.0/24', MESH), ['2001:db8:77::/64', '192.168.1.0/24']);
  for (const [bad, why] of [
    ['2001:db8:77::1/64', /host bits/],
    ['::/0', /exit node/],
    ['fd0d:e100:d3c5::/48', /mesh prefix/],
    ['fd0d::/16', /mesh prefix/],
    ['2001:db8:77:0::/64', /canonical/],
    ['2001:db8::/129', /not an IP prefix/],
    ['ff02::/16', /multicast/],
  ] as const) {
    assert.throws(() => parseAdvertisedRoutes(bad, MESH), (e: unknown) => e instanceof MeshdError && e.code === 'E_USAGE' && why.test(e.message), bad);
  }
});

// ---- map → data-plane config ----

const KEY = (n: number) => Buffer.alloc(32, n).toString('base64');

function peer(did: string, n: number, extra: Partial<MapPeer> = {}): MapPeer {
  return {
    did, wireguardKey: KEY(n), meshIP: `10.200.0.${n}`, meshIP6: `fd0d:e100:d3c5::${n}`, owner: did, hostname: `host-${n}`, os: null,
    capabilities: [], endpoints: [], localEndpoints: [], natType: 'unknown', discoKey: null, preferredRelay: null,
    endpointUpdatedAt: null, online: false, expiresAt: null, ...extra,
  };
}

function map(peers: MapPeer[]): NetworkMap {
  return {
    formatVersion: 1, networkId: 'n', anchor: 'did:a', epoch: 0,
    network: { name: 'x', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', listenPort: 51820, dnsServers: [], magicDNSSuffix: null, anchorEndpoint: null, defaultRelays: [] },
    self: null, peers, relays: [], filter: { policyVersion: null, defaultAction: 'accept', rules: [] }, hash: 'h', generatedAt: '',
  };
}

const allowed = (cfg: ReturnType<typeof configFromMap>, did: string) => cfg.peers.find((p) => p.did === did)!.allowedIps.map(formatPrefix);

test('routes in the map become the router peer\'s allowed IPs; bad ones are dropped and reported', () => {
  const m = map([
    peer('did:b', 2, { routes: ['192.168.1.0/24', '10.200.9.0/24', '192.168.5.1/24', 7 as unknown as string] }),
    peer('did:c', 3, { routes: ['192.168.1.0/24', '192.168.3.0/24'] }),
    peer('did:d', 4, { routes: 'x' as unknown as string[] }),
    peer('did:e', 5), // an older map without the fields
  ]);
  const cfg = configFromMap(m);
  assert.deepEqual(allowed(cfg, 'did:b'), ['10.200.0.2/32', 'fd0d:e100:d3c5::2/128', '192.168.1.0/24']);
  // the same prefix from a second router: the first (by DID) keeps it
  assert.deepEqual(allowed(cfg, 'did:c'), ['10.200.0.3/32', 'fd0d:e100:d3c5::3/128', '192.168.3.0/24']);
  assert.deepEqual(allowed(cfg, 'did:d'), ['10.200.0.4/32', 'fd0d:e100:d3c5::4/128']);
  assert.deepEqual(allowed(cfg, 'did:e'), ['10.200.0.5/32', 'fd0d:e100:d3c5::5/128']);
  const reasons = cfg.problems.map((p) => `${p.peer} ${p.field} ${p.reason}`);
  assert.equal(cfg.problems.every((p) => !p.peerSkipped && p.field === 'routes'), true);
  for (const want of [/did:b routes .*10\.200\.9\.0\/24.*mesh prefix/, /did:b routes .*192\.168\.5\.1\/24.*host bits/, /did:b routes .*not text/, /did:c routes .*192\.168\.1\.0\/24 is also routed by did:b/, /did:d routes not a list/]) {
    assert.ok(reasons.some((r) => want.test(r)), `${want} in ${reasons.join('\n')}`);
  }
  // a route inside a network this host is on stays out of the tunnel
  const local = configFromMap(m, { localPrefixes: ['192.168.0.0/16'] });
  assert.deepEqual(allowed(local, 'did:b'), ['10.200.0.2/32', 'fd0d:e100:d3c5::2/128']);
  assert.ok(local.problems.some((p) => /inside a network this host is on/.test(p.reason)));
});

test('exit node: 0.0.0.0/0 goes to the chosen peer only, and only when it is an approved exit node', () => {
  const m = map([peer('did:b', 2, { exitNode: true }), peer('did:c', 3, { exitNode: false }), peer('did:d', 4, { exitNode: true })]);
  const none = configFromMap(m);
  assert.equal(none.exitNode, null);
  assert.ok(none.peers.every((p) => p.allowedIps.every((a) => a.bits > 0)));
  const use = configFromMap(m, { exitNode: 'did:b' });
  assert.deepEqual(use.exitNode, { did: 'did:b', publicKeyBase64: KEY(2), ipv6: false });
  assert.deepEqual(allowed(use, 'did:b').at(-1), '0.0.0.0/0');
  assert.ok(!allowed(use, 'did:d').includes('0.0.0.0/0'));
  const unapproved = configFromMap(m, { exitNode: 'did:c' });
  assert.equal(unapproved.exitNode, null);
  assert.ok(!allowed(unapproved, 'did:c').includes('0.0.0.0/0'));
  assert.ok(unapproved.problems.some((p) => p.field === 'exitNode' && p.peer === 'did:c' && /not an approved exit node/.test(p.reason)));
});

test('--exit-node picks a peer by DID, mesh IP or a host name that only one peer has', () => {
  const m = map([peer('did:b', 2, { hostname: 'exit.home' }), peer('did:c', 3, { hostname: 'twin' }), peer('did:d', 4, { hostname: 'twin' })]);
  assert.equal(pickExitNode(m, 'did:b'), 'did:b');
  assert.equal(pickExitNode(m, '10.200.0.3'), 'did:c');
  assert.equal(pickExitNode(m, 'EXIT.home'), 'did:b');
  assert.equal(pickExitNode(m, 'exit'), 'did:b');
  assert.equal(pickExitNode(m, 'twin'), null);
  assert.equal(pickExitNode(m, 'nobody'), null);
});

test('ACL rules can name a route prefix as destination', () => {
  const nodes: AclNode[] = [{ did: 'did:c', owner: 'did:c', wireguardKey: KEY(3), meshIPs: ['10.200.0.3'] }];
  const f = compileAcl(
    { version: 2, defaultAction: 'drop', groups: {}, rules: [{ action: 'accept', src: ['did:c'], dst: ['192.168.1.0/24'], proto: 'tcp', dstPorts: ['443'] }] },
    nodes,
  );
  const pkt = (dst: string, port: number) => ({ srcKey: KEY(3), srcIP: '10.200.0.3', dstIP: dst, proto: 'tcp' as const, srcPort: 40000, dstPort: port });
  assert.equal(filterDecision(f, pkt('192.168.1.20', 443)), 'accept');
  assert.equal(filterDecision(f, pkt('192.168.1.20', 22)), 'drop');
  assert.equal(filterDecision(f, pkt('192.168.2.20', 443)), 'drop');
});

// ---- what the routing module installs ----

test('router rules: forward from the tunnel only to approved routes; SNAT on or off; exit node masquerades', () => {
  const base = { tun: 'meshd0', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', routes: ['192.168.1.0/24', '2001:db8::/48'], exitNode: false, exitNode6: false, snat: true };
  const r = routerRules(base);
  assert.deepEqual(r.fwd, [
    ['-i', 'meshd0', '-d', '192.168.1.0/24', '-j', 'ACCEPT'],
    ['-o', 'meshd0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
    ['-i', 'meshd0', '-j', 'DROP'],
  ]);
  assert.deepEqual(r.nat, [['-s', '10.200.0.0/16', '-d', '192.168.1.0/24', '-j', 'MASQUERADE']]);
  const noSnat = routerRules({ ...base, snat: false });
  assert.deepEqual(noSnat.nat, [['-d', '192.168.1.0/24', '-j', 'RETURN']]);
  assert.ok(noSnat.fwd.some((x) => x.join(' ') === '-o meshd0 -s 192.168.1.0/24 -j ACCEPT'));
  const exit = routerRules({ ...base, routes: [], exitNode: true, snat: false });
  assert.deepEqual(exit.fwd[0], ['-i', 'meshd0', '!', '-o', 'meshd0', '-j', 'ACCEPT']);
  assert.deepEqual(exit.nat, [['-s', '10.200.0.0/16', '!', '-o', 'meshd0', '-j', 'MASQUERADE']]);
});

test('router rules for IPv6: the IPv6 routes with the mesh /48 as source; the exit node only when it carries IPv6', () => {
  const base = { tun: 'meshd0', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', routes: ['192.168.1.0/24', '2001:db8::/48'], exitNode: false, exitNode6: false, snat: true };
  const r6 = routerRules(base, 6);
  assert.deepEqual(r6.fwd, [
    ['-i', 'meshd0', '-d', '2001:db8::/48', '-j', 'ACCEPT'],
    ['-o', 'meshd0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
    ['-i', 'meshd0', '-j', 'DROP'],
  ]);
  assert.deepEqual(r6.nat, [['-s', 'fd0d:e100:d3c5::/48', '-d', '2001:db8::/48', '-j', 'MASQUERADE']]);
  assert.deepEqual(routerRules({ ...base, snat: false }, 6).nat, [['-d', '2001:db8::/48', '-j', 'RETURN']]);
  // which families are touched at all: an IPv4-only router never runs ip6tables
  assert.deepEqual([routesFamily(base, 4), routesFamily(base, 6)], [true, true]);
  const v4only = { ...base, routes: ['192.168.1.0/24'] };
  assert.deepEqual([routesFamily(v4only, 4), routesFamily(v4only, 6)], [true, false]);
  const v6only = { ...base, routes: ['2001:db8::/48'] };
  assert.deepEqual([routesFamily(v6only, 4), routesFamily(v6only, 6)], [false, true]);
  const exit4 = { ...base, routes: [], exitNode: true };
  assert.deepEqual([routesFamily(exit4, 4), routesFamily(exit4, 6)], [true, false]);
  const exit6 = { ...exit4, exitNode6: true };
  assert.equal(routesFamily(exit6, 6), true);
  assert.deepEqual(routerRules(exit6, 6).nat, [['-s', 'fd0d:e100:d3c5::/48', '!', '-o', 'meshd0', '-j', 'MASQUERADE']]);
  assert.deepEqual(routerRules(exit6, 6).fwd[0], ['-i', 'meshd0', '!', '-o', 'meshd0', '-j', 'ACCEPT']);
});

test('exit client rules: the tunnel\'s own UDP first, LAN access optional, then the exit table', () => {
  const p = { tun: 'meshd0', listenPort: 41641, socketMark: 0, bypass: ['198.51.100.10'], allowLanAccess: false, ipv6: 'exit' as const, tunRoutes6: [] };
  assert.deepEqual(exitRules(p).map((r) => r.join(' ')), ['pref 5210 ipproto udp sport 41641 lookup main', 'pref 5230 lookup 5282']);
  assert.deepEqual(exitRules({ ...p, socketMark: 0x5282 })[0]!.join(' '), 'pref 5210 fwmark 0x5282 lookup main');
  assert.deepEqual(exitRules({ ...p, allowLanAccess: true }).map((r) => r.join(' '))[1], 'pref 5220 lookup main suppress_prefixlength 0');
});

test('exit client routes: IPv6 through the exit node, or unreachable beyond the mesh; DWN and relays bypass per family', () => {
  const p = { tun: 'meshd0', listenPort: 41641, socketMark: 0x5282, bypass: ['198.51.100.10', '2001:db8:1::10'], allowLanAccess: false, ipv6: 'exit' as const, tunRoutes6: [] };
  const text = (rs: string[][]) => rs.map((r) => r.join(' '));
  assert.deepEqual(text(exitRoutes(p, 4)), ['default dev meshd0', 'throw 198.51.100.10/32']);
  assert.deepEqual(text(exitRoutes(p, 6)), ['default dev meshd0', 'throw fe80::/10', 'throw 2001:db8:1::10/128']);
  const blocked = { ...p, ipv6: 'block' as const, tunRoutes6: ['2001:db8:77::/64', 'fd0d:e100:d3c5::/48'] };
  assert.deepEqual(text(exitRoutes(blocked, 6)), [
    'unreachable default',
    '2001:db8:77::/64 dev meshd0',
    'fd0d:e100:d3c5::/48 dev meshd0',
    'throw fe80::/10',
    'throw 2001:db8:1::10/128',
  ]);
  // IPv4 is unaffected by what happens to IPv6
  assert.deepEqual(exitRoutes(blocked, 4), exitRoutes(p, 4));
});

test('map: an exit node that carries IPv6 gets ::/0 too; the IPv6 prefixes kept in the TUN when IPv6 is blocked', () => {
  const m = map([peer('did:b', 2, { exitNode: true, exitNodeIPv6: true, routes: ['2001:db8:77::/64', '192.168.1.0/24'] }), peer('did:c', 3, { exitNode: true, exitNodeIPv6: false })]);
  const six = configFromMap(m, { exitNode: 'did:b' });
  assert.deepEqual(allowed(six, 'did:b').slice(-2), ['0.0.0.0/0', '::/0']);
  assert.deepEqual(six.exitNode, { did: 'did:b', publicKeyBase64: KEY(2), ipv6: true });
  const four = configFromMap(m, { exitNode: 'did:c' });
  assert.deepEqual(allowed(four, 'did:c').slice(-1), ['0.0.0.0/0']);
  assert.equal(four.exitNode?.ipv6, false);
  assert.deepEqual(tunRoutes6(m), ['2001:db8:77::/64', 'fd0d:e100:d3c5::/48']);
});

test('journal: steps undone newest first, failures counted, file removed; a damaged or foreign journal is refused', async () => {
  const home = mkdtempSync(join(tmpdir(), 'meshd-journal-'));
  try {
    const events: string[] = [];
    const j = new Journal(home, (e, f) => events.push(`${e} ${String(f.step)}`));
    // `ip -V` changes nothing; `ip nosuchobject` fails
    j.record({ run: { tool: 'ip', args: ['-V'] } });
    j.record({ run: { tool: 'ip', args: ['nosuchobject'] } });
    assert.equal(readJournal(home).length, 2);
    assert.equal(new Journal(home, () => undefined).pending, 2, 'a new run sees what the last one left');
    assert.equal(await j.undoAll(), 1);
    assert.deepEqual(events, ['routing.undo-step-failed ip nosuchobject']);
    assert.equal(existsSync(journalPath(home)), false);
    assert.equal(j.pending, 0);

    // a guard kept across an undo, then undone on its own (the exit routes' replacement)
    j.record({ run: { tool: 'ip', args: ['-V'] } });
    const guard = j.record({ run: { tool: 'ip', args: ['-Version'] } });
    assert.equal(await j.undoAllBut(1), 0);
    assert.deepEqual(readJournal(home), [guard], 'the guard is still recorded');
    j.record({ run: { tool: 'ip', args: ['-V'] } });
    await j.undoStep(guard);
    assert.deepEqual(readJournal(home), [{ run: { tool: 'ip', args: ['-V'] } }]);
    await j.undoAll();
    assert.equal(existsSync(journalPath(home)), false);

    writeFileSync(journalPath(home), '{not json');
    assert.throws(() => readJournal(home), (e: unknown) => e instanceof MeshdError && e.code === 'E_STATE_CORRUPT');
    for (const step of [{ run: { tool: 'sh', args: ['-c', 'true'] } }, { sysctl: '/etc/passwd', value: '1' }, { sysctl: '/proc/sys/net/../../x', value: '1' }, { sysctl: '/proc/sys/net/ipv4/ip_forward', value: 'x; y' }]) {
      writeFileSync(journalPath(home), JSON.stringify({ version: 1, undo: [step] }));
      assert.throws(() => readJournal(home), /not a routing journal/, JSON.stringify(step));
    }
    assert.match(readFileSync(journalPath(home), 'utf8'), /ip_forward/, 'a refused journal is left for the user to check');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

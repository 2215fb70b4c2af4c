import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { deriveDeviceKeys, wgKeyToBase64 } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { meshIPv4For } from '../../src/identity/mesh-address.js';
import { buildNetworkMap, canonicalJson, isNetworkMap, mapHash, ONLINE_WINDOW_MS, sameSteadyPeer, touchPeers, type MapPeer } from '../../src/control/netmap.js';
import { expiryDue, nextTimeChange, withOnline } from '../../src/control/map-time.js';
import { activeNodeOf, activeNodes } from '../../src/control/model.js';
import { emptyRecordSet, type RecordSet } from '../../src/control/model.js';
import { assignMeshAddresses } from '../../src/control/addressing.js';
import type { Decoded } from '../../src/control/reader.js';
import type { RecordKind } from '../../src/control/protocol.js';
import type { RecordTypes } from '../../src/control/records.js';
import { parseIp } from '../../src/util/ip.js';
import { containsAddress, parsePrefix } from '../../src/util/prefix.js';

const keys = (n: number) => deriveDeviceKeys(new Uint8Array(32).fill(n));
const did = (n: number) => formatDidJwk(keys(n).edPublic);
const OWNER = did(1);
const NET = 'bafynet';
const T0 = Date.parse('2025-03-01T12:00:00.000Z');
let seq = 0;

function rec<K extends RecordKind>(kind: K, data: RecordTypes[K], o: { author?: string; parent?: string; recipient?: string; at?: number; id?: string } = {}): Decoded<K> {
  const id = o.id ?? `rec${++seq}`;
  const parent = o.parent ?? (kind === 'network' ? '' : NET);
  return {
    kind,
    recordId: id,
    contextId: parent ? `${parent}/${id}` : id,
    parentContextId: parent,
    parentId: undefined,
    author: o.author ?? OWNER,
    recipient: o.recipient,
    dateCreated: new Date(T0).toISOString(),
    timestamp: new Date(o.at ?? T0).toISOString(),
    epoch: 0,
    dataCid: `cid-${id}`,
    data,
  };
}

function node(n: number, extra: Partial<RecordTypes['node']> = {}, at = T0) {
  const d = did(n);
  return rec('node', { did: d, meshIP: `10.200.0.${n}`, meshIP6: `fd0d:e100:d3c5::${n}`, owner: OWNER, status: 'active', addedAt: new Date(T0 + n).toISOString(), ...extra }, { recipient: d, at });
}

function world(): RecordSet {
  const s = emptyRecordSet();
  s.network.push({ ...rec('network', { name: 'home', meshCIDR: '10.200.0.0/16', epoch: 2 }, { id: NET }), epoch: 2 });
  for (const n of [1, 2, 3]) s.node.push(node(n));
  const n2 = s.node[1]!;
  s.nodeInfo.push(rec('nodeInfo', { hostname: 'two', os: 'linux', version: '1' }, { author: did(2), parent: n2.contextId }));
  s.endpoint.push(
    rec('endpoint', {
      publicEndpoints: [{ address: '198.51.100.2', port: 1, source: 'stun' }, { address: '198.51.100.3', port: 2, source: 'static', priority: 9 }],
      localEndpoints: ['192.168.0.2:51820'],
      natType: 'endpoint-dependent',
      discoKey: Buffer.alloc(32, 2).toString('base64'),
      updatedAt: new Date(T0 - 1000).toISOString(),
    }, { author: did(2), parent: n2.contextId }),
  );
  s.relay.push(rec('relay', { url: 'https://r.example/derp', region: 'eu' }));
  return s;
}

test('map from records: self, peers with keys, endpoints by priority, online, settings', () => {
  const m = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  assert.equal(m.epoch, 2);
  assert.equal(m.self?.did, did(3));
  assert.deepEqual(m.peers.map((p) => p.did), [did(1), did(2)].sort());
  const two = m.peers.find((p) => p.did === did(2))!;
  assert.equal(two.wireguardKey, wgKeyToBase64(keys(2).xPublic));
  assert.equal(two.hostname, 'two');
  assert.deepEqual(two.endpoints.map((e) => e.port), [2, 1]);
  assert.equal(two.online, true);
  assert.equal(two.natType, 'endpoint-dependent');
  assert.equal(m.peers.find((p) => p.did === did(1))!.online, false);
  assert.equal(m.network.listenPort, 51820);
  assert.equal(m.network.meshCIDR6, 'fd0d:e100:d3c5::/48');
  assert.deepEqual(m.relays, [{ url: 'https://r.example/derp', region: 'eu', regionName: null, stunPort: 3478, stunOnly: false, latitude: null, longitude: null, fingerprint: null }]);
  assert.deepEqual(m.filter, { policyVersion: null, defaultAction: 'accept', rules: [] });
  assert.ok(isNetworkMap(JSON.parse(JSON.stringify(m))));
  // offline after the window
  const later = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 + ONLINE_WINDOW_MS + 5000 })!;
  assert.equal(later.peers.find((p) => p.did === did(2))!.online, false);
  assert.equal(later.hash, m.hash, 'liveness alone makes no new map for the data plane');
});

test('revoked, expired, foreign and conflicting records are left out', () => {
  const s = world();
  s.node.push(node(4, { status: 'revoked' }));
  s.node.push(node(5, { expiresAt: new Date(T0 - 1).toISOString() }));
  s.node.push(rec('node', { did: did(6), meshIP: '10.200.0.6', meshIP6: 'fd0d:e100:d3c5::6', owner: OWNER, status: 'active', addedAt: new Date(T0).toISOString() }, { author: did(2), recipient: did(6) }));
  s.node.push(node(7, { meshIP: '10.201.0.7' }));
  s.node.push(node(8, { meshIP: '10.200.0.2', addedAt: new Date(T0 + 100).toISOString() })); // clashes with node 2
  // an endpoint for node 3 written by someone else
  s.endpoint.push(rec('endpoint', { publicEndpoints: [], localEndpoints: [], natType: 'unknown', discoKey: Buffer.alloc(32).toString('base64'), updatedAt: new Date(T0).toISOString() }, { author: did(2), parent: s.node[2]!.contextId }));
  // a newer revocation of node 1 wins over the older active state
  s.node.push(node(1, { status: 'revoked' }, T0 + 10));
  const m = buildNetworkMap({ set: s, networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  assert.deepEqual(m.peers.map((p) => p.did), [did(2)]);
  assert.equal(m.self?.discoKey, null);
});

test('no network record, no map; a non-owner network record is ignored', () => {
  const s = world();
  s.network = [rec('network', { name: 'x', meshCIDR: '10.0.0.0/8', epoch: 0 }, { id: NET, author: did(2) })];
  assert.equal(buildNetworkMap({ set: s, networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 }), undefined);
});

test('hash: stable over key order, changes with content, ignores generatedAt', () => {
  const a = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  const b = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 + 1 })!;
  assert.equal(a.hash, b.hash);
  assert.notEqual(a.generatedAt, b.generatedAt);
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] }), '{"a":[1,{"c":3,"d":2}],"b":1}');
  const changed = { ...a, epoch: 3 };
  assert.notEqual(mapHash(changed), a.hash);
  assert.equal(isNetworkMap(changed), false);
});

test('addressing: the hashed address, or the next free one on a collision', () => {
  const d = did(11);
  const first = assignMeshAddresses(d, '10.200.0.0/16', new Set());
  assert.equal(first.meshIP, meshIPv4For(d));
  const again = assignMeshAddresses(d, '10.200.0.0/16', new Set([first.meshIP, first.meshIP6]));
  assert.notEqual(again.meshIP, first.meshIP);
  assert.notEqual(again.meshIP6, first.meshIP6);
  // a /30 has exactly one usable host (.2): full after that
  const tiny = assignMeshAddresses(d, '10.9.0.0/30', new Set());
  assert.equal(tiny.meshIP, '10.9.0.2');
  assert.throws(() => assignMeshAddresses(d, '10.9.0.0/30', new Set(['10.9.0.2'])), /no free address/);
});

test('property: assigned addresses stay inside the CIDR, avoid taken ones and the reserved hosts', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 250 }), fc.constantFrom('10.200.0.0/16', '10.9.8.0/24', '10.0.0.0/28'), fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 10 }), (n, cidr, takenHosts) => {
      const c = parsePrefix(cidr, { hostBits: 'reject' });
      const taken = new Set(takenHosts.map((h) => `${cidr.split('.').slice(0, 3).join('.')}.${h}`));
      const a = assignMeshAddresses(did(n), cidr, taken);
      const ip = parseIp(a.meshIP)!;
      assert.ok(containsAddress(c, ip));
      assert.ok(!taken.has(a.meshIP));
      const host = Buffer.from(ip).readUInt32BE(0) - Buffer.from(c.addr).readUInt32BE(0);
      assert.ok(host >= 2 && host <= 2 ** (32 - c.bits) - 2, `host ${host}`);
    }),
    { numRuns: 300 },
  );
});

// ---- what moves with time alone: heartbeats touch one peer, online flags flip on a deadline ----

/** world() with node 2's endpoint record re-written at `at` (a heartbeat: same bytes, newer time) or with other data. */
function heartbeat(s: RecordSet, at: number, data?: Partial<RecordTypes['endpoint']>): RecordSet {
  const i = s.endpoint.findIndex((e) => e.author === did(2));
  const e = s.endpoint[i]!;
  s.endpoint[i] = { ...e, timestamp: new Date(at).toISOString(), data: { ...e.data, ...data } };
  return s;
}

const n2Context = (s: RecordSet) => s.node.find((n) => n.data.did === did(2))!.contextId;

test('a heartbeat touches its peer in place: the same map as a rebuild, same hash, the other peers untouched', () => {
  const before = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  const at = T0 + 4 * 60_000;
  const set = heartbeat(world(), at);
  const touched = touchPeers(before, set, new Set([n2Context(set)]), at);
  assert.ok(touched, 'a heartbeat is a touch');
  const rebuilt = buildNetworkMap({ set, networkId: NET, anchor: OWNER, selfDid: did(3), now: at })!;
  assert.deepEqual({ ...touched, generatedAt: '' }, { ...rebuilt, generatedAt: '' });
  assert.equal(touched.hash, before.hash);
  assert.equal(touched.peers.find((p) => p.did === did(2))!.endpointUpdatedAt, new Date(at).toISOString());
  assert.equal(touched.peers.find((p) => p.did === did(1)), before.peers.find((p) => p.did === did(1)), 'other peers are the same objects');
});

test('a touch refuses what the hash covers (new endpoints) and nodes the map does not hold: rebuild', () => {
  const before = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  const moved = heartbeat(world(), T0 + 1000, { localEndpoints: ['192.168.0.9:51820'] });
  assert.equal(touchPeers(before, moved, new Set([n2Context(moved)]), T0 + 1000), undefined);
  assert.equal(touchPeers(before, world(), new Set(['bafynet/nosuchnode']), T0 + 1000), undefined);
});

test('sameSteadyPeer answers as comparing the canonical JSON of the peers without their time fields', () => {
  const m = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  const p = m.peers[0]!;
  const steady = (x: MapPeer) => canonicalJson({ ...x, online: undefined, endpointUpdatedAt: undefined });
  const variants: MapPeer[] = [
    { ...p },
    { ...p, online: !p.online, endpointUpdatedAt: new Date(T0 + 5).toISOString() },
    { ...p, endpoints: p.endpoints.map((e) => ({ ...e, port: e.port + 1 })) },
    { ...p, endpoints: [...p.endpoints, { address: '192.0.2.1', port: 1, priority: 0, source: 'static' }] },
    { ...p, hostname: null },
    { ...p, hostname: 'other' },
    { ...p, routes: undefined } as unknown as MapPeer,
    (({ routes: _r, ...rest }) => rest)(p) as MapPeer,
    { ...p, routes: ['10.0.0.0/8'] },
    { ...p, exitNode: undefined, exitNodeIPv6: undefined } as unknown as MapPeer,
    { ...p, capabilities: [...p.capabilities].reverse() },
    { ...p, localEndpoints: ['192.168.1.2:51820'] },
    { ...p, discoKey: null },
    Object.fromEntries(Object.entries(p).reverse()) as unknown as MapPeer,
  ];
  let differ = 0;
  for (const a of variants) {
    for (const b of variants) {
      const want = steady(a) === steady(b);
      if (!want) differ++;
      assert.equal(sameSteadyPeer(a, b), want, `${steady(a)} vs ${steady(b)}`);
    }
  }
  assert.ok(differ > 50, 'the variants differ');
});

test('online flags flip at the deadline nextTimeChange names, and withOnline sets them without a rebuild', () => {
  const m = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  const two = () => m.peers.find((p) => p.did === did(2))!;
  assert.equal(two().online, true);
  const flip = nextTimeChange(m, T0);
  assert.equal(flip, Date.parse(two().endpointUpdatedAt!) + ONLINE_WINDOW_MS + 1);
  assert.equal(withOnline(m, flip - 1), m, 'nothing changed before the deadline: the same object');
  const after = withOnline(m, flip);
  assert.equal(after.peers.find((p) => p.did === did(2))!.online, false);
  assert.equal(after.hash, m.hash);
  const rebuilt = buildNetworkMap({ set: world(), networkId: NET, anchor: OWNER, selfDid: did(3), now: flip })!;
  assert.deepEqual({ ...after, generatedAt: '' }, { ...rebuilt, generatedAt: '' });
  assert.equal(nextTimeChange(after, flip), Infinity, 'no endpoint record dated ahead, no expiry: nothing to wake for');
});

test('an expiry is a deadline too, and then the map must be rebuilt', () => {
  const s = world();
  s.node.push(node(4, { expiresAt: new Date(T0 + 60_000).toISOString() }, T0 + 1));
  const m = buildNetworkMap({ set: s, networkId: NET, anchor: OWNER, selfDid: did(3), now: T0 })!;
  assert.equal(nextTimeChange(m, T0), T0 + 60_000);
  assert.equal(expiryDue(m, T0 + 59_999), false);
  assert.equal(expiryDue(m, T0 + 60_000), true);
});

test('property: activeNodes pairs each node with the newest nodeInfo and endpoint it wrote itself, as activeNodeOf does', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ node: fc.integer({ min: 1, max: 4 }), author: fc.integer({ min: 1, max: 5 }), at: fc.integer({ min: 0, max: 5 }), info: fc.boolean() }), { maxLength: 20 }), (writes) => {
      const s = world();
      for (const n of [4]) s.node.push(node(n));
      for (const w of writes) {
        const parent = s.node.find((r) => r.data.did === did(w.node))!.contextId;
        if (w.info) s.nodeInfo.push(rec('nodeInfo', { hostname: `h${seq}`, os: 'linux', version: '1' }, { author: did(w.author), parent, at: T0 + w.at }));
        else s.endpoint.push(rec('endpoint', { publicEndpoints: [], localEndpoints: [`192.168.0.${seq % 250}:1`], natType: 'unknown', discoKey: Buffer.alloc(32, 7).toString('base64'), updatedAt: new Date(T0).toISOString() }, { author: did(w.author), parent, at: T0 + w.at }));
      }
      for (const a of activeNodes(s, NET, OWNER, '10.200.0.0/16', T0).active) assert.deepEqual(a, activeNodeOf(s, a.record));
    }),
    { numRuns: 40 },
  );
});

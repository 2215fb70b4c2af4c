/**
 * The mesh name table: labels from host names, clashes resolved the same way whatever the order
 * the nodes come in, the default suffix, reverse names and zones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildNameTable, hostLabel, meshSuffix, NameIndex, reverseName, reverseZones, toLabel, type NameSource } from '../../src/dns/names.js';

const node = (did: string, hostname: string | null, n: number): NameSource => ({ did, hostname, ipv4: `10.200.0.${n}`, ipv6: `fd7a:115c:a1e0::${n}` });

test('labels: lower case, first part of a dotted name, bad characters become dashes, ≤ 63', () => {
  assert.equal(toLabel('My_Laptop'), 'my-laptop');
  assert.equal(hostLabel('Laptop.example.org', 'did:x'), 'laptop');
  assert.equal(hostLabel('--a__b--', 'did:x'), 'a-b');
  assert.equal(hostLabel('x'.repeat(100), 'did:x').length, 63);
  assert.match(hostLabel(null, 'did:x'), /^node-[0-9a-f]{8}$/);
  assert.match(hostLabel('___', 'did:x'), /^node-[0-9a-f]{8}$/);
  assert.notEqual(hostLabel(null, 'did:x'), hostLabel(null, 'did:y'));
});

test('suffix: the network record’s magicDNSSuffix, else <network name>.internal', () => {
  assert.equal(meshSuffix('Corp.Example.', 'x'), 'corp.example');
  assert.equal(meshSuffix(null, 'Home Lab'), 'home-lab.internal');
  assert.equal(meshSuffix(null, '!!!'), 'mesh.internal');
  assert.equal(meshSuffix('bad..suffix', 'lab'), 'lab.internal');
});

test('clashes: the first DID keeps the name, later ones get -2, -3; a chosen name is never taken', () => {
  const t = buildNameTable('lab.internal', [node('did:c', 'desk', 3), node('did:a', 'desk', 1), node('did:b', 'DESK', 2), node('did:d', 'desk-2', 4)]);
  const by = Object.fromEntries(t.entries.map((e) => [e.did, e.fqdn]));
  assert.deepEqual(by, { 'did:a': 'desk.lab.internal', 'did:b': 'desk-3.lab.internal', 'did:c': 'desk-4.lab.internal', 'did:d': 'desk-2.lab.internal' });
});

test('property: the table is the same whatever order the nodes come in, and names are unique', () => {
  const arb = fc.uniqueArray(fc.record({ did: fc.string({ minLength: 1, maxLength: 6 }).map((s) => `did:${s}`), hostname: fc.option(fc.constantFrom('a', 'a-2', 'b', 'A', 'a.x', '_', 'x'.repeat(70))) }), {
    selector: (r) => r.did,
    maxLength: 12,
  });
  fc.assert(
    fc.property(arb, fc.nat(), (nodes, seed) => {
      const srcs = nodes.map((n, i) => node(n.did, n.hostname, i + 1));
      const shuffled = [...srcs].sort(() => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 3) - 1);
      const t1 = buildNameTable('s', srcs);
      const t2 = buildNameTable('s', shuffled);
      assert.deepEqual(t1, t2);
      const names = t1.entries.map((e) => e.label);
      assert.equal(new Set(names).size, names.length);
      for (const l of names) assert.match(l, /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
    }),
    { numRuns: 500 },
  );
});

test('reverse names and zones', () => {
  assert.equal(reverseName('10.200.0.5'), '5.0.200.10.in-addr.arpa');
  assert.equal(reverseName('fd7a::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.a.7.d.f.ip6.arpa');
  assert.equal(reverseName('nope'), null);
  assert.deepEqual(reverseZones('10.200.0.0/16'), ['200.10.in-addr.arpa']);
  assert.deepEqual(reverseZones('10.200.0.0/15'), ['200.10.in-addr.arpa', '201.10.in-addr.arpa']);
  assert.deepEqual(reverseZones('fd7a:115c:a1e0::/48'), ['0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa']);
  assert.deepEqual(reverseZones('10.0.0.0/1'), []);
  assert.deepEqual(reverseZones('junk'), []);
  const idx = new NameIndex(buildNameTable('lab.internal', [node('did:a', 'a', 1)], ['10.200.0.0/16']));
  assert.equal(idx.reverse('1.0.200.10.in-addr.arpa')?.fqdn, 'a.lab.internal');
  assert.ok(idx.inReverseZone('9.9.200.10.in-addr.arpa'));
  assert.ok(!idx.inReverseZone('9.9.201.10.in-addr.arpa'));
});

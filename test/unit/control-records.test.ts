import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MeshdError } from '../../src/errors.js';
import { deriveDeviceKeys } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { parseRecord, validateRecord } from '../../src/control/records.js';
import { canonicalIp, parseIp } from '../../src/control/ip.js';
import type { RecordKind } from '../../src/control/protocol.js';

const did = (n: number) => formatDidJwk(deriveDeviceKeys(new Uint8Array(32).fill(n)).edPublic);
const now = '2025-01-02T03:04:05.678Z';

const valid: Record<RecordKind, unknown> = {
  network: { name: 'home', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', epoch: 0, listenPort: 51820, dnsServers: ['10.200.0.1'] },
  node: { did: did(1), meshIP: '10.200.1.2', meshIP6: 'fd0d:e100:d3c5:0:1:2:3:4', owner: did(2), status: 'active', addedAt: now },
  member: { did: did(3), status: 'active', addedAt: now },
  nodeInfo: { hostname: 'laptop.local', os: 'linux', capabilities: ['relay'], version: '0.1.0' },
  endpoint: {
    publicEndpoints: [{ address: '198.51.100.7', port: 41641, source: 'stun', priority: 3 }, { address: '2001:db8::1', port: 5, source: 'static' }],
    localEndpoints: ['192.168.1.4:41641', '[fe80::1]:41641'],
    natType: 'endpoint-independent',
    discoKey: Buffer.alloc(32, 7).toString('base64'),
    updatedAt: now,
  },
  aclPolicy: { version: 2, defaultAction: 'drop', groups: { admins: [did(1)] }, rules: [{ action: 'accept', src: ['group:admins'], dst: ['*'], proto: 'tcp', dstPorts: ['22', '8000-9000'] }] },
  relay: { url: 'https://relay.example/derp', region: 'eu', stunPort: 3478, latitude: 52.1, longitude: 4.3 },
  relayProposal: { url: 'https://relay.example/derp', region: 'eu' },
  nodeRequest: { did: did(4), hostname: 'phone', note: 'my phone' },
  keyDelivery: { epoch: 3, networkKey: Buffer.alloc(32, 1).toString('base64url') },
  invite: { role: 'node', expiresAt: now, uses: 1, label: 'laptop', verifier: Buffer.alloc(32, 2).toString('base64url'), used: [{ did: did(5), at: now }] },
  joinRequest: { did: did(6), hostname: 'laptop', proof: Buffer.alloc(32, 3).toString('base64url') },
};

test('every record kind accepts a valid example, in both modes', () => {
  for (const [kind, v] of Object.entries(valid)) {
    const out = validateRecord(kind as RecordKind, v, 'write');
    assert.ok(out, kind);
    assert.deepEqual(validateRecord(kind as RecordKind, JSON.parse(JSON.stringify(v)), 'read'), out);
  }
});

test('unknown fields: refused on write, dropped on read', () => {
  const v = { ...(valid.nodeInfo as object), shiny: true };
  assert.throws(() => validateRecord('nodeInfo', v, 'write'), (e: unknown) => e instanceof MeshdError && e.code === 'E_RECORD_INVALID' && /shiny/.test(e.message));
  assert.equal('shiny' in validateRecord('nodeInfo', v, 'read'), false);
});

test('field checks name the field', () => {
  const cases: [RecordKind, Record<string, unknown>, RegExp][] = [
    ['network', { ...(valid.network as object), name: 'x'.repeat(65) }, /name/],
    ['network', { ...(valid.network as object), meshCIDR: '10.200.0.1/16' }, /meshCIDR/],
    ['network', { ...(valid.network as object), meshCIDR: '10.0.0.0/31' }, /meshCIDR/],
    ['node', { ...(valid.node as object), did: 'did:web:example.com' }, /did/],
    ['node', { ...(valid.node as object), status: 'gone' }, /status/],
    ['node', { ...(valid.node as object), meshIP: 'fd00::1' }, /meshIP/],
    ['node', { ...(valid.node as object), addedAt: 'yesterday' }, /addedAt/],
    ['nodeInfo', { ...(valid.nodeInfo as object), os: 'plan9' }, /os/],
    ['nodeInfo', { ...(valid.nodeInfo as object), hostname: 'a b' }, /hostname/],
    ['nodeInfo', { ...(valid.nodeInfo as object), capabilities: ['relay', 'relay'] }, /capabilities/],
    ['endpoint', { ...(valid.endpoint as object), discoKey: 'abc' }, /discoKey/],
    ['endpoint', { ...(valid.endpoint as object), publicEndpoints: [{ address: '1.2.3.4', port: 0, source: 'stun' }] }, /port/],
    ['endpoint', { ...(valid.endpoint as object), localEndpoints: ['[1.2.3.4]:5'] }, /localEndpoints/],
    ['aclPolicy', { ...(valid.aclPolicy as object), rules: [{ action: 'accept', src: ['group:nobody'], dst: ['*'] }] }, /undefined group/],
    ['aclPolicy', { ...(valid.aclPolicy as object), rules: [{ action: 'accept', src: ['*'], dst: ['*'], dstPorts: ['22'] }] }, /proto/],
    ['aclPolicy', { ...(valid.aclPolicy as object), rules: [{ action: 'accept', src: ['*'], dst: ['*'], proto: 'tcp', dstPorts: ['9-8'] }] }, /dstPorts/],
    ['aclPolicy', { ...(valid.aclPolicy as object), rules: [{ action: 'accept', src: ['10.0.0.0/33'], dst: ['*'] }] }, /src/],
    ['relay', { ...(valid.relay as object), url: 'ftp://x' }, /url/],
    ['keyDelivery', { ...(valid.keyDelivery as object), networkKey: 'short' }, /networkKey/],
  ];
  for (const [kind, v, re] of cases) {
    assert.throws(() => validateRecord(kind, v, 'write'), (e: unknown) => e instanceof MeshdError && e.code === 'E_RECORD_INVALID' && re.test(e.message), `${kind} ${JSON.stringify(v).slice(0, 80)}`);
  }
});

test('DIDs are stored canonically, IPs in canonical text', () => {
  const jwk = JSON.parse(Buffer.from(did(1).slice(8), 'base64url').toString()) as Record<string, string>;
  const reordered = 'did:jwk:' + Buffer.from(JSON.stringify({ x: jwk.x, kty: 'OKP', crv: 'Ed25519', kid: '0' })).toString('base64url');
  const out = validateRecord('node', { ...(valid.node as object), did: reordered, meshIP6: 'FD0D:E100:D3C5:0:0:0:0:1' }, 'read');
  assert.equal(out.did, did(1));
  assert.equal(out.meshIP6, 'fd0d:e100:d3c5::1');
});

test('aclPolicy defaults: defaultAction drop, groups empty', () => {
  const p = validateRecord('aclPolicy', { version: 1, rules: [] }, 'write');
  assert.equal(p.defaultAction, 'drop');
  assert.deepEqual(p.groups, {});
});

test('property: parsing arbitrary text never throws anything but MeshdError', () => {
  const kinds = Object.keys(valid) as RecordKind[];
  fc.assert(
    fc.property(fc.constantFrom(...kinds), fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), (kind, text) => {
      try {
        parseRecord(kind, text);
      } catch (e) {
        assert.ok(e instanceof MeshdError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('property: mutating a valid record yields a valid record or a MeshdError', () => {
  const kinds = Object.keys(valid) as RecordKind[];
  fc.assert(
    fc.property(fc.constantFrom(...kinds), fc.string({ maxLength: 12 }), fc.jsonValue(), (kind, key, value) => {
      const v = { ...(valid[kind] as object), [key]: value };
      try {
        validateRecord(kind, v, 'read');
      } catch (e) {
        assert.ok(e instanceof MeshdError && e.code === 'E_RECORD_INVALID', String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('IP parsing and formatting', () => {
  assert.equal(canonicalIp('::ffff:1.2.3.4'), '::ffff:102:304');
  assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalIp('0:0:0:0:0:0:0:0'), '::');
  assert.equal(parseIp('1.2.3.04'), null);
  assert.equal(parseIp('1::2::3'), null);
  assert.equal(parseIp('fe80::1%eth0'), null);
});

test('property: IPv4 and IPv6 round-trip through parse and format', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (s) => {
      const a = parseIp(s);
      assert.ok(a, s);
      const again = parseIp(canonicalIp(s)!);
      assert.deepEqual(again, a);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 50 }), (s) => {
      parseIp(s);
    }),
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MeshdError } from '../../src/errors.js';
import { deriveDeviceKeys } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { ALLOW_ALL, compileAcl, filterDecision, initialPolicy, parseAclPolicy, type AclNode } from '../../src/control/acl.js';
import { wireguardKeyOf } from '../../src/control/netmap.js';

const did = (n: number) => formatDidJwk(deriveDeviceKeys(new Uint8Array(32).fill(n)).edPublic);
const alice = did(1); // a member (person)
const owner = did(2);
const laptop = did(3);
const phone = did(4);
const server = did(5);

const node = (d: string, o: string, ip: string): AclNode => ({ did: d, owner: o, wireguardKey: wireguardKeyOf(d), meshIPs: [ip, `fd0d:e100:d3c5::${ip.split('.').at(-1)}`] });
const nodes = [node(laptop, alice, '10.200.0.3'), node(phone, alice, '10.200.0.4'), node(server, owner, '10.200.0.5'), node(owner, owner, '10.200.0.2')];
const key = (d: string) => wireguardKeyOf(d);

const policyText = JSON.stringify({
  version: 3,
  defaultAction: 'drop',
  groups: { admins: [owner] },
  rules: [
    { action: 'drop', src: [phone], dst: ['*'] },
    { action: 'accept', src: [alice], dst: [server], proto: 'tcp', dstPorts: ['22', '8000-8100'] },
    { action: 'accept', src: ['group:admins'], dst: ['*'] },
    { action: 'accept', src: ['10.200.0.0/16'], dst: ['10.200.0.5/32'], proto: 'icmp' },
  ],
});

test('parse a policy file and compile it against the nodes', () => {
  const p = parseAclPolicy(policyText);
  const f = compileAcl(p, nodes);
  assert.equal(f.policyVersion, 3);
  assert.equal(f.defaultAction, 'drop');
  assert.deepEqual(f.rules[0]!.src.peers, [key(phone)]);
  // a person's DID selects all their devices
  assert.deepEqual(f.rules[1]!.src.peers, [key(laptop), key(phone)].sort());
  assert.deepEqual(f.rules[1]!.dst.cidrs, ['10.200.0.5/32', 'fd0d:e100:d3c5::5/128']);
  assert.deepEqual(f.rules[1]!.dstPorts, [{ first: 22, last: 22 }, { first: 8000, last: 8100 }]);
  assert.equal(f.rules[2]!.dst.any, true);
  assert.deepEqual(f.rules[3]!.src.cidrs, ['10.200.0.0/16']);
  assert.equal(f.rules[3]!.proto, 'icmp');
});

test('first matching rule wins; default applies otherwise', () => {
  const f = compileAcl(parseAclPolicy(policyText), nodes);
  const pkt = (src: string, srcIP: string, dstIP: string, proto: 'tcp' | 'udp' | 'icmp', dstPort?: number) => ({ srcKey: key(src), srcIP, dstIP, proto, ...(dstPort ? { dstPort, srcPort: 40000 } : {}) });
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.5', 'tcp', 22)), 'accept');
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.5', 'tcp', 8050)), 'accept');
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.5', 'tcp', 23)), 'drop');
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.5', 'udp', 22)), 'drop');
  assert.equal(filterDecision(f, pkt(phone, '10.200.0.4', '10.200.0.5', 'tcp', 22)), 'drop'); // rule 0
  assert.equal(filterDecision(f, pkt(owner, '10.200.0.2', '10.200.0.3', 'udp', 53)), 'accept'); // admins
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.5', 'icmp')), 'accept'); // CIDR rule
  assert.equal(filterDecision(f, pkt(laptop, '10.200.0.3', '10.200.0.4', 'icmp')), 'drop');
});

test('no policy allows everything; the initial policy accepts all too', () => {
  assert.deepEqual(compileAcl(undefined, nodes), ALLOW_ALL);
  const f = compileAcl(initialPolicy(), nodes);
  assert.equal(filterDecision(f, { srcKey: key(phone), srcIP: '10.200.0.4', dstIP: '10.200.0.3', proto: 'udp', dstPort: 1 }), 'accept');
});

test('DIDs of removed nodes select nothing', () => {
  const f = compileAcl(parseAclPolicy(policyText), nodes.filter((n) => n.did !== phone));
  assert.deepEqual(f.rules[0]!.src, { any: false, peers: [], cidrs: [] });
});

test('bad policy files give E_ACL_INVALID with the field', () => {
  const bad: [string, RegExp][] = [
    ['not json', /not valid JSON/],
    ['{"version":0,"rules":[]}', /version/],
    ['{"version":1,"rules":[{"action":"allow","src":["*"],"dst":["*"]}]}', /action/],
    ['{"version":1,"rules":[{"action":"accept","src":[],"dst":["*"]}]}', /src/],
    ['{"version":1,"rules":[{"action":"accept","src":["bob"],"dst":["*"]}]}', /src/],
    ['{"version":1,"rules":[],"extra":1}', /extra/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseAclPolicy(text), (e: unknown) => e instanceof MeshdError && e.code === 'E_ACL_INVALID' && re.test(e.message), text);
  }
});

test('property: any text parses to a policy or an E_ACL_INVALID', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      try {
        const p = parseAclPolicy(text);
        compileAcl(p, nodes);
      } catch (e) {
        assert.ok(e instanceof MeshdError && e.code === 'E_ACL_INVALID', String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('property: compiled filters decide every packet, and a rule for `*` decides all', () => {
  const selector = fc.constantFrom('*', alice, phone, server, 'group:admins', '10.200.0.0/24', '10.200.0.4', 'fd0d:e100:d3c5::/48');
  const rule = fc.record({
    action: fc.constantFrom('accept', 'drop'),
    src: fc.array(selector, { minLength: 1, maxLength: 3 }),
    dst: fc.array(selector, { minLength: 1, maxLength: 3 }),
    proto: fc.constantFrom('tcp', 'udp', 'icmp', '*'),
  });
  fc.assert(
    fc.property(fc.array(rule, { maxLength: 6 }), fc.constantFrom(...nodes), fc.constantFrom(...nodes), fc.integer({ min: 1, max: 65535 }), (rules, a, b, port) => {
      const text = JSON.stringify({ version: 1, defaultAction: 'drop', groups: { admins: [owner] }, rules });
      const f = compileAcl(parseAclPolicy(text), nodes);
      const d = filterDecision(f, { srcKey: a.wireguardKey, srcIP: a.meshIPs[0]!, dstIP: b.meshIPs[0]!, proto: 'tcp', srcPort: 1, dstPort: port });
      assert.ok(d === 'accept' || d === 'drop');
      const all = compileAcl(parseAclPolicy(JSON.stringify({ version: 1, groups: { admins: [owner] }, rules: [{ action: 'accept', src: ['*'], dst: ['*'] }, ...rules] })), nodes);
      assert.equal(filterDecision(all, { srcKey: a.wireguardKey, srcIP: a.meshIPs[0]!, dstIP: b.meshIPs[1]!, proto: 'udp' }), 'accept');
    }),
    { numRuns: 500 },
  );
});

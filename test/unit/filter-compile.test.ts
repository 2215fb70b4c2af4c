import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { compileFilter, isWireGuardKeyBase64, parsePortRange } from '../../src/engine/filter/compile.js';
import { formatPrefix, parsePrefix, prefixContainsAt, sourceCheckFromPrefixes } from '../../src/engine/filter/cidr.js';
import { MeshdError } from '../../src/errors.js';
import type { FilterSpec } from '../../src/engine/filter/types.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MeshdError && e.code === 'E_ACL_INVALID' && pattern.test(e.message));
}

test('parsePrefix: IPv4 and IPv6, bare addresses are host prefixes', () => {
  const p = parsePrefix('10.200.0.0/16');
  assert.equal(p.family, 4);
  assert.equal(p.bits, 16);
  assert.deepEqual(p.addr, [0x0ac80000, 0, 0, 0]);
  assert.deepEqual(p.mask, [0xffff0000 | 0, 0, 0, 0]);
  assert.equal(parsePrefix('10.200.3.7').bits, 32);
  assert.equal(parsePrefix('0.0.0.0/0').mask[0], 0);
  const q = parsePrefix('fd0d:e100:d3c5::/48');
  assert.equal(q.family, 6);
  assert.deepEqual(q.addr, [0xfd0de100 | 0, 0xd3c50000 | 0, 0, 0]);
  assert.deepEqual(q.mask, [-1, 0xffff0000 | 0, 0, 0]);
  assert.equal(parsePrefix('::1').bits, 128);
  assert.deepEqual(parsePrefix('::ffff:10.0.0.1').addr, [0, 0, 0xffff, 0x0a000001]);
  assert.equal(formatPrefix(q), 'fd0d:e100:d3c5::/48');
  assert.equal(formatPrefix(parsePrefix('192.168.1.0/24')), '192.168.1.0/24');
});

test('parsePrefix rejects bad input with E_ACL_INVALID', () => {
  for (const bad of [
    '', '10.0.0', '10.0.0.256', '10.0.0.01', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', '10.0.0.1/24',
    'fd00::/129', 'fd00:::1', '1::2::3', 'fd00::1%eth0', '[fd00::1]', 'gggg::', '1:2:3:4:5:6:7:8:9', 'fd00::/64/1', ' 10.0.0.1',
  ]) {
    rejects(() => parsePrefix(bad), /./);
  }
});

function addrBytes(addr: string): Buffer {
  if (!isIPv6(addr)) return Buffer.from(addr.split('.').map(Number));
  const b = Buffer.alloc(16);
  addr.split(':').forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 2 * i));
  return b;
}

/** The network of `addr`/`bits` as text (host bits cleared), independent of the code under test. */
function networkText(addr: string, bits: number): string {
  const b = addrBytes(addr);
  for (let i = 0; i < b.length; i++) {
    const keep = bits - 8 * i;
    b[i] = keep >= 8 ? b[i]! : keep <= 0 ? 0 : b[i]! & (0xff << (8 - keep));
  }
  if (b.length === 4) return [...b].join('.');
  return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
}

test('property: prefix containment agrees with node:net BlockList', () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
  const near = (gen: fc.Arbitrary<string>) => fc.tuple(gen, gen, fc.boolean()).map(([a, b, same]) => [a, same ? a : b] as const);
  fc.assert(
    fc.property(fc.boolean(), near(v4), near(v6), fc.nat(128), (six, p4, p6, bitsRaw) => {
      const [net, addr] = six ? p6 : p4;
      const bits = bitsRaw % (six ? 129 : 33);
      const bl = new BlockList();
      bl.addSubnet(net, bits, six ? 'ipv6' : 'ipv4');
      const prefix = parsePrefix(`${networkText(net, bits)}/${bits}`);
      assert.equal(prefixContainsAt(prefix, addrBytes(addr), 0), bl.check(addr, six ? 'ipv6' : 'ipv4'));
    }),
    { numRuns: 2000 },
  );
});

test('sourceCheckFromPrefixes checks in place by family', () => {
  const check = sourceCheckFromPrefixes(['10.200.0.11/32', '192.168.5.0/24', 'fd0d:e100:d3c5::11']);
  const buf = Buffer.from([0, 0, 10, 200, 0, 11, 192, 168, 5, 77, 192, 168, 6, 1]);
  assert.equal(check(buf, 2, 4), true);
  assert.equal(check(buf, 6, 4), true);
  assert.equal(check(buf, 10, 4), false);
  const six = Buffer.alloc(16);
  six.writeUInt32BE(0xfd0de100, 0);
  six.writeUInt32BE(0xd3c50000, 4);
  six[15] = 0x11;
  assert.equal(check(six, 0, 6), true);
  six[15] = 0x12;
  assert.equal(check(six, 0, 6), false);
});

test('parsePortRange', () => {
  assert.deepEqual(parsePortRange('22'), [22, 22]);
  assert.deepEqual(parsePortRange('8000-9000'), [8000, 9000]);
  assert.deepEqual(parsePortRange('0-65535'), [0, 65535]);
  assert.equal(parsePortRange('*'), null);
  for (const bad of ['', '-1', '65536', '9000-8000', '22-', '-22', '1-2-3', 'http', '022', ' 22', '1e3']) {
    rejects(() => parsePortRange(bad), /port/);
  }
});

test('isWireGuardKeyBase64 accepts exactly canonical 32-byte keys', () => {
  assert.equal(isWireGuardKeyBase64(KEY_A), true);
  assert.equal(isWireGuardKeyBase64(Buffer.alloc(32, 0xff).toString('base64')), true);
  assert.equal(isWireGuardKeyBase64(Buffer.alloc(31).toString('base64')), false);
  assert.equal(isWireGuardKeyBase64(KEY_A.slice(0, 42) + 'B='), false, 'non-zero padding bits');
  assert.equal(isWireGuardKeyBase64(KEY_A.replace('A', '-')), false);
  assert.equal(isWireGuardKeyBase64(42), false);
});

test('compileFilter: defaults and source semantics', () => {
  const c = compileFilter({
    rules: [
      { action: 'accept' },
      { action: 'drop', srcPeers: [KEY_A, KEY_B], proto: 'tcp', dstPorts: ['22', '8000-9000'] },
      { action: 'accept', srcCidrs: ['10.200.0.0/16'], dstCidrs: ['10.200.0.2', 'fd0d:e100:d3c5::2'] },
      { action: 'accept', srcPeers: '*', srcCidrs: ['10.0.0.0/8'], dstPorts: ['*'] },
    ],
  });
  assert.equal(c.defaultAction, 'drop', 'default drop');
  const [r0, r1, r2, r3] = c.rules;
  assert.equal(r0!.srcPeers, '*');
  assert.equal(r0!.dstCidrs, '*');
  assert.equal(r0!.proto, '*');
  assert.equal(r0!.dstPorts, null);
  assert.ok(r1!.srcPeers instanceof Set && r1!.srcPeers.has(KEY_A) && r1!.srcPeers.size === 2);
  assert.deepEqual(r1!.dstPorts, [
    [22, 22],
    [8000, 9000],
  ]);
  assert.ok(r2!.srcPeers instanceof Set && r2!.srcPeers.size === 0, 'cidrs only: no peers');
  assert.equal(r2!.srcCidrs.length, 1);
  assert.equal((r2!.dstCidrs as unknown[]).length, 2);
  assert.equal(r3!.srcPeers, '*', "'*' absorbs srcCidrs");
  assert.equal(r3!.dstPorts, null, '"*" port = any');
  // Plain data: survives structuredClone (Sets included).
  assert.deepEqual(structuredClone(c), c);
});

test('compileFilter rejects invalid specs with a message naming the rule', () => {
  const bad: [unknown, RegExp][] = [
    [{ rules: 'x' }, /rules/],
    [{ defaultAction: 'allow', rules: [] }, /defaultAction/],
    [{ rules: [], extra: 1 }, /unknown field/],
    [{ rules: [{ action: 'permit' }] }, /rule 0\.action/],
    [{ rules: [{ action: 'accept' }, { action: 'accept', proto: 'sctp' }] }, /rule 1\.proto/],
    [{ rules: [{ action: 'accept', srcPeers: ['not-a-key'] }] }, /srcPeers/],
    [{ rules: [{ action: 'accept', srcPeers: KEY_A }] }, /srcPeers/],
    [{ rules: [{ action: 'accept', srcCidrs: ['10.0.0.1/8'] }] }, /srcCidrs.*host bits/],
    [{ rules: [{ action: 'accept', dstCidrs: ['nope'] }] }, /dstCidrs/],
    [{ rules: [{ action: 'accept', dstPorts: ['70000'] }] }, /dstPorts/],
    [{ rules: [{ action: 'accept', dstPorts: [] }] }, /dstPorts/],
    [{ rules: [{ action: 'accept', dstPorts: '22' }] }, /dstPorts/],
    [{ rules: [{ action: 'accept', proto: 'icmp', dstPorts: ['1'] }] }, /ICMP has no ports/],
    [{ rules: [{ action: 'accept', to: '*' }] }, /unknown field "to"/],
    [{ rules: [null] }, /rule 0/],
  ];
  for (const [spec, re] of bad) rejects(() => compileFilter(spec as FilterSpec), re);
});

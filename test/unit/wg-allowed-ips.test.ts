/** The allowed-IPs trie: longest prefix, replacement, removal, IPv4 and IPv6, against a naive model. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AllowedIps } from '../../src/engine/wireguard/allowed-ips.js';
import { parseIp } from '../../src/util/ip.js';
import { formatPrefix, maskBytes, makePrefix, parsePrefix, tryParsePrefix, type IpPrefix } from '../../src/util/prefix.js';

const P = (s: string): IpPrefix => parsePrefix(s, { hostBits: 'mask' });
const ip = (s: string): Uint8Array => parseIp(s)!;

/** The obvious implementation: a list, longest matching prefix wins, later inserts replace. */
class Naive<T> {
  entries: Array<{ p: IpPrefix; v: T }> = [];
  insert(p: IpPrefix, v: T): void {
    this.remove(p);
    this.entries.push({ p, v });
  }
  remove(p: IpPrefix): boolean {
    const n = this.entries.length;
    this.entries = this.entries.filter((e) => !(e.p.bits === p.bits && Buffer.compare(e.p.addr, p.addr) === 0));
    return n !== this.entries.length;
  }
  removeValue(v: T): void {
    this.entries = this.entries.filter((e) => e.v !== v);
  }
  lookup(a: Uint8Array): T | null {
    let best: { p: IpPrefix; v: T } | null = null;
    for (const e of this.entries) {
      if (e.p.addr.length !== a.length) continue;
      if (Buffer.compare(maskBytes(a, e.p.bits), e.p.addr) !== 0) continue;
      if (best === null || e.p.bits > best.p.bits) best = e;
    }
    return best?.v ?? null;
  }
}

describe('allowed IPs', () => {
  test('longest prefix wins, IPv4', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/8'), 'a');
    t.insert(P('10.1.0.0/16'), 'b');
    t.insert(P('10.1.2.3/32'), 'c');
    t.insert(P('0.0.0.0/0'), 'default');
    assert.equal(t.lookup(ip('10.1.2.3')), 'c');
    assert.equal(t.lookup(ip('10.1.2.4')), 'b');
    assert.equal(t.lookup(ip('10.200.0.1')), 'a');
    assert.equal(t.lookup(ip('192.168.1.1')), 'default');
  });

  test('longest prefix wins, IPv6, and families do not mix', () => {
    const t = new AllowedIps<string>();
    t.insert(P('fd00::/8'), 'a');
    t.insert(P('fd0d:e100:d3c5::/48'), 'mesh');
    t.insert(P('fd0d:e100:d3c5::7/128'), 'host');
    assert.equal(t.lookup(ip('fd0d:e100:d3c5::7')), 'host');
    assert.equal(t.lookup(ip('fd0d:e100:d3c5::8')), 'mesh');
    assert.equal(t.lookup(ip('fd12::1')), 'a');
    assert.equal(t.lookup(ip('2001:db8::1')), null);
    assert.equal(t.lookup(ip('10.0.0.1')), null);
  });

  test('host bits are ignored, inserting a prefix again moves it to the new peer', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.9.9.9/24'), 'a');
    assert.equal(t.lookup(ip('10.9.9.1')), 'a');
    t.insert(P('10.9.9.0/24'), 'b');
    assert.equal(t.lookup(ip('10.9.9.1')), 'b');
    assert.deepEqual(t.prefixesOf('a'), []);
    assert.deepEqual(t.prefixesOf('b'), ['10.9.9.0/24']);
  });

  test('removal: one prefix, or everything of a peer', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.0/8'), 'a');
    t.insert(P('10.1.0.0/16'), 'b');
    t.insert(P('10.1.1.0/24'), 'a');
    t.insert(P('fd00::/64'), 'a');
    assert.equal(t.remove(P('10.1.0.0/16')), true);
    assert.equal(t.remove(P('10.1.0.0/16')), false);
    assert.equal(t.lookup(ip('10.1.2.3')), 'a');
    t.removeValue('a');
    assert.equal(t.lookup(ip('10.1.1.1')), null);
    assert.equal(t.lookup(ip('fd00::1')), null);
    assert.deepEqual(t.prefixesOf('a'), []);
  });

  test('lookups straight from packet headers', () => {
    const t = new AllowedIps<string>();
    t.insert(P('10.0.0.2/32'), 'peer');
    t.insert(P('fd00::2/128'), 'peer6');
    const v4 = new Uint8Array(20);
    v4[0] = 0x45;
    v4.set(ip('10.0.0.1'), 12);
    v4.set(ip('10.0.0.2'), 16);
    assert.equal(t.lookupDestination(v4, 0, 20), 'peer');
    assert.equal(t.lookupSource(v4, 0, 20), null);
    assert.equal(t.lookupDestination(v4, 0, 19), null, 'truncated header');
    const v6 = new Uint8Array(40);
    v6[0] = 0x60;
    v6.set(ip('fd00::2'), 8);
    assert.equal(t.lookupSource(v6, 0, 40), 'peer6');
    v6[0] = 0x50;
    assert.equal(t.lookupSource(v6, 0, 40), null, 'not IP');
  });

  const v4prefix = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }));
  const v6prefix = fc.tuple(
    // few distinct high bytes so prefixes overlap often
    fc.tuple(fc.constantFrom(0xfd, 0x20, 0x00), fc.uint8Array({ minLength: 15, maxLength: 15 })).map(([h, r]) => Uint8Array.from([h, ...r])),
    fc.integer({ min: 0, max: 128 }),
  );
  const prefix = fc.oneof(v4prefix, v6prefix).map(([a, bits]): IpPrefix => makePrefix(a, bits));
  const op = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), p: prefix, v: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('remove' as const), p: prefix }),
    fc.record({ kind: fc.constant('removeValue' as const), v: fc.integer({ min: 0, max: 5 }) }),
  );

  test('fast-check: same answers as the naive list, through inserts and removals', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), { maxLength: 30 }), (ops, probes) => {
        const trie = new AllowedIps<number>();
        const naive = new Naive<number>();
        const inserted: IpPrefix[] = [];
        for (const o of ops) {
          if (o.kind === 'insert') {
            trie.insert(o.p, o.v);
            naive.insert(o.p, o.v);
            inserted.push(o.p);
          } else if (o.kind === 'remove') {
            assert.equal(trie.remove(o.p), naive.remove(o.p), `remove ${formatPrefix(o.p)}`);
          } else {
            trie.removeValue(o.v);
            naive.removeValue(o.v);
          }
        }
        // probe random addresses and every inserted prefix (and its neighbours)
        const all = [...probes, ...inserted.map((p) => p.addr), ...inserted.map((p) => Uint8Array.from(p.addr, (b, i) => (i === p.addr.length - 1 ? b ^ 1 : b)))];
        for (const a of all) assert.equal(trie.lookup(a), naive.lookup(a), `lookup ${Buffer.from(a).toString('hex')}`);
        for (let v = 0; v <= 5; v++) {
          const fromNaive = naive.entries.filter((e) => e.v === v).map((e) => formatPrefix(e.p)).sort();
          assert.deepEqual(trie.prefixesOf(v).sort(), fromNaive);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('fast-check: prefix parser never throws and round-trips', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), (s) => {
        const p = tryParsePrefix(s, { hostBits: 'mask' });
        if (p !== null) assert.deepEqual(parsePrefix(formatPrefix(p), { hostBits: 'reject' }), p);
      }),
    );
    fc.assert(
      fc.property(prefix, (p) => {
        assert.deepEqual(parsePrefix(formatPrefix(p), { hostBits: 'reject' }), p);
      }),
    );
  });
});

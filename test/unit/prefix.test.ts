/**
 * util/prefix, the one prefix parser: host-bits policy, canonical text, containment and overlap
 * against a naive bigint model, and garbage that never throws anything but PrefixError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PrefixError } from '../../src/errors.js';
import { formatIp, parseIp } from '../../src/util/ip.js';
import {
  containsAddress,
  containsPrefix,
  formatPrefix,
  hostPrefix,
  makePrefix,
  overlaps,
  parseInterfaceAddress,
  parsePrefix,
  prefixEquals,
  tryParsePrefix,
  type IpPrefix,
} from '../../src/util/prefix.js';

const REJECT = { hostBits: 'reject' } as const;
const MASK = { hostBits: 'mask' } as const;

function rejects(text: unknown, reason: PrefixError['reason'], policy: Parameters<typeof parsePrefix>[1] = REJECT): void {
  assert.throws(
    () => parsePrefix(text, policy),
    (e: unknown) => e instanceof PrefixError && e.code === 'E_PREFIX_INVALID' && e.reason === reason,
    `${String(text)} should be refused (${reason})`,
  );
}

// --- a naive model: addresses as bigints, written independently of the module -------------

function big(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** The top `bits` bits of an address of width `w`. */
function top(v: bigint, w: number, bits: number): bigint {
  return v >> BigInt(w - bits);
}

const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
/** An address and a length for its family. */
const addrBits = fc.oneof(
  fc.tuple(v4, fc.integer({ min: 0, max: 32 })),
  fc.tuple(v6, fc.integer({ min: 0, max: 128 })),
);
const prefix = addrBits.map(([a, bits]) => makePrefix(a, bits));
/** Prefixes and addresses that often share leading bits (so containment is not always false). */
const nearby = fc.tuple(addrBits, fc.integer({ min: 0, max: 128 }), fc.integer({ min: 0, max: 255 })).map(([[a, bits], flip, x]) => {
  const b = new Uint8Array(a);
  const i = Math.min(b.length - 1, flip >> 3);
  b[i] = b[i]! ^ x;
  return { p: makePrefix(a, bits), addr: b };
});

test('parses IPv4, IPv6 and bare addresses; writes canonical text', () => {
  const p = parsePrefix('10.200.0.0/16', REJECT);
  assert.equal(p.family, 4);
  assert.equal(p.bits, 16);
  assert.deepEqual([...p.addr], [10, 200, 0, 0]);
  assert.equal(formatPrefix(parsePrefix('10.200.3.7', REJECT)), '10.200.3.7/32');
  assert.equal(formatPrefix(parsePrefix('FD0D:E100:D3C5:0::/48', REJECT)), 'fd0d:e100:d3c5::/48');
  assert.equal(formatPrefix(parsePrefix('::ffff:10.0.0.0/104', REJECT)), '::ffff:a00:0/104');
  assert.equal(formatPrefix(parsePrefix('::/0', REJECT)), '::/0');
  assert.equal(formatPrefix(parsePrefix('0.0.0.0/0', REJECT)), '0.0.0.0/0');
  assert.equal(parsePrefix('fd00::1', REJECT).bits, 128);
});

test('host bits: refused under "reject", cleared under "mask"', () => {
  rejects('10.0.0.1/24', 'host-bits');
  rejects('fd00::1/64', 'host-bits');
  rejects('0.0.0.1/0', 'host-bits');
  assert.equal(formatPrefix(parsePrefix('10.0.0.1/24', MASK)), '10.0.0.0/24');
  assert.equal(formatPrefix(parsePrefix('fd00::1/64', MASK)), 'fd00::/64');
  assert.equal(formatPrefix(parsePrefix('255.255.255.255/0', MASK)), '0.0.0.0/0');
  assert.equal(formatPrefix(parsePrefix('10.0.0.1/32', REJECT)), '10.0.0.1/32');
});

test('bare addresses: host prefixes unless the policy wants the length written', () => {
  rejects('10.0.0.1', 'length', { hostBits: 'mask', bare: 'reject' });
  rejects('fd00::', 'length', { hostBits: 'reject', bare: 'reject' });
  assert.equal(parsePrefix('10.0.0.0/8', { hostBits: 'reject', bare: 'reject' }).bits, 8);
});

test('bad text is refused with a reason, and nothing but PrefixError is ever thrown', () => {
  for (const bad of ['', '/', '/8', '10.0.0', '10.0.0.256/8', '10.0.0.01', '[fd00::1]', 'fd00::1%eth0', 'fd00::1%eth0/64', 'gggg::', '1::2::3', ' 10.0.0.0/8', '10.0.0.0 /8', 'x/8']) {
    rejects(bad, 'address');
  }
  for (const bad of ['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/08', '10.0.0.0/008', '::/00', 'fd00::/129', '10.0.0.0/8/1', '10.0.0.0/+8', '10.0.0.0/-1', '10.0.0.0/8 ', '10.0.0.0/1e1', '10.0.0.0/0x8']) {
    rejects(bad, 'length');
  }
  for (const bad of [null, undefined, 8, {}, ['10.0.0.0/8'], Symbol('x')]) rejects(bad, 'not-text');
  rejects(`${'1:'.repeat(40)}:/8`, 'address');
  assert.equal(tryParsePrefix('10.0.0.1/24', REJECT), null);
  assert.notEqual(tryParsePrefix('10.0.0.1/24', MASK), null);
});

test('interface addresses keep their host part; makePrefix and hostPrefix', () => {
  const a = parseInterfaceAddress('10.200.3.7/16');
  assert.equal(formatIp(a.addr), '10.200.3.7');
  assert.equal(formatPrefix(a.prefix), '10.200.0.0/16');
  assert.throws(() => parseInterfaceAddress('10.200.3.7'), PrefixError);
  assert.equal(formatPrefix(parseInterfaceAddress('10.200.3.7', { bare: 'host' }).prefix), '10.200.3.7/32');
  assert.equal(formatPrefix(hostPrefix(parseIp('fd00::7')!)), 'fd00::7/128');
  assert.throws(() => makePrefix(new Uint8Array(4), 33), PrefixError);
  assert.throws(() => makePrefix(new Uint8Array(5), 8), PrefixError);
  const src = new Uint8Array([10, 1, 2, 3]);
  const p = makePrefix(src, 8);
  src[0] = 99;
  assert.equal(formatPrefix(p), '10.0.0.0/8', 'makePrefix copies its input');
});

test('property: format then parse (either policy) gives the same prefix back', () => {
  fc.assert(
    fc.property(prefix, (p) => {
      const text = formatPrefix(p);
      assert.deepEqual(parsePrefix(text, REJECT), p);
      assert.deepEqual(parsePrefix(text, MASK), p);
      assert.ok(prefixEquals(parsePrefix(text, REJECT), p));
    }),
    { numRuns: 2000 },
  );
});

test('property: host-bits policy against the model (mask = clear, reject iff any host bit)', () => {
  fc.assert(
    fc.property(addrBits, ([a, bits]) => {
      const w = a.length * 8;
      const text = `${formatIp(a)}/${bits}`;
      const v = big(a);
      const hostBitsSet = (v & ((1n << BigInt(w - bits)) - 1n)) !== 0n;
      const masked = parsePrefix(text, MASK);
      assert.equal(big(masked.addr), top(v, w, bits) << BigInt(w - bits));
      assert.equal(masked.bits, bits);
      assert.equal(masked.family, a.length === 4 ? 4 : 6);
      assert.equal(tryParsePrefix(text, REJECT) === null, hostBitsSet, text);
    }),
    { numRuns: 2000 },
  );
});

test('property: containsAddress, containsPrefix and overlaps agree with the model', () => {
  fc.assert(
    fc.property(nearby, prefix, ({ p, addr }, q) => {
      const w = p.addr.length * 8;
      const inP = top(big(addr), w, p.bits) === top(big(p.addr), w, p.bits);
      assert.equal(containsAddress(p, addr), inP);
      const r = makePrefix(addr, Math.min(w, p.bits + (addr[0]! % 9)));
      // r is inside p exactly when it is no shorter and its network address is inside p
      assert.equal(containsPrefix(p, r), r.bits >= p.bits && inP);
      for (const [a, b] of [
        [p, r],
        [p, q],
      ] as [IpPrefix, IpPrefix][]) {
        const sameFamily = a.family === b.family;
        const bits = Math.min(a.bits, b.bits);
        const model = sameFamily && top(big(a.addr), w, bits) === top(big(b.addr), w, bits);
        assert.equal(overlaps(a, b), model);
        assert.equal(overlaps(b, a), model);
        assert.equal(model, containsPrefix(a, b) || containsPrefix(b, a));
      }
      // an address of the other family is never contained
      assert.equal(containsAddress(p, new Uint8Array(p.addr.length === 4 ? 16 : 4)), false);
    }),
    { numRuns: 3000 },
  );
});

test('property: garbage never throws anything but PrefixError, and what parses round-trips', () => {
  const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF.:/%[] -x'.split(''));
  const near = fc.array(alphabet, { maxLength: 50 }).map((cs) => cs.join(''));
  const mutated = fc.tuple(prefix, fc.nat(60), fc.string({ maxLength: 3 })).map(([p, at, ins]) => {
    const t = formatPrefix(p);
    const i = at % (t.length + 1);
    return t.slice(0, i) + ins + t.slice(i + 1);
  });
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 60 }), near, mutated, fc.anything()), fc.constantFrom<'reject' | 'mask'>('reject', 'mask'), (s, hostBits) => {
      let p: IpPrefix;
      try {
        p = parsePrefix(s, { hostBits });
      } catch (e) {
        assert.ok(e instanceof PrefixError, `threw ${(e as Error).name}: ${(e as Error).message} for ${typeof s === 'string' ? JSON.stringify(s) : typeof s}`);
        return;
      }
      assert.deepEqual(parsePrefix(formatPrefix(p), REJECT), p);
    }),
    { numRuns: 5000 },
  );
});

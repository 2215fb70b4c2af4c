import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import {
  formatIPv4,
  formatIPv6,
  formatIp,
  formatIp16,
  isV4MappedAt,
  parseIPv4,
  parseIPv4At,
  parseIPv6,
  parseIPv6At,
  parseIp,
  parseIp16At,
  parseIpZoned,
} from '../../src/util/ip.js';

const hex = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('hex'));

// ---------------------------------------------------------------------------------------------
// A naive reference: regular expressions and string splitting, written for clarity not speed.

const V4_PART = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const V4_RE = new RegExp(`^${V4_PART}\\.${V4_PART}\\.${V4_PART}\\.${V4_PART}$`);

function naiveV4(s: string): number[] | null {
  const m = V4_RE.exec(s);
  return m ? [1, 2, 3, 4].map((i) => Number(m[i])) : null;
}

function naiveGroups(part: string, lastMayBeV4: boolean): number[] | null {
  if (part === '') return [];
  const items = part.split(':');
  const out: number[] = [];
  for (const [i, item] of items.entries()) {
    if (lastMayBeV4 && i === items.length - 1 && item.includes('.')) {
      const q = naiveV4(item);
      if (q === null) return null;
      out.push(q[0]! * 256 + q[1]!, q[2]! * 256 + q[3]!);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
      out.push(parseInt(item, 16));
    } else {
      return null;
    }
  }
  return out;
}

function naiveV6(s: string): number[] | null {
  const halves = s.split('::');
  let groups: number[] | null;
  if (halves.length === 1) {
    groups = naiveGroups(s, true);
    if (groups === null || groups.length !== 8) return null;
  } else if (halves.length === 2) {
    const head = naiveGroups(halves[0]!, false);
    const tail = naiveGroups(halves[1]!, true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    groups = [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    return null;
  }
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** RFC 5952 by brute force: try every run, longest first, leftmost among equals. */
function naiveFormatV6(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  for (let len = 8; len >= 2; len--) {
    for (let start = 0; start + len <= 8; start++) {
      if (g.slice(start, start + len).every((x) => x === 0)) {
        const h = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
        return `${h(g.slice(0, start))}::${h(g.slice(start + len))}`;
      }
    }
  }
  return g.map((x) => x.toString(16)).join(':');
}

/** 4 or 16 bytes as the 16-byte IPv4-mapped layout. */
function parseIp16Reference(b: Uint8Array): Uint8Array {
  if (b.length === 16) return b;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b, 12);
  return out;
}

/** WHATWG URL's IPv6 serializer (RFC 5952 compression, no mixed IPv4 notation). */
function urlFormatV6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

// ---------------------------------------------------------------------------------------------
// Inputs

const MALFORMED = [
  '', '.', ':', ':::', '1.2.3', '1.2.3.4.5', '1.2.3.4.5.6', '1.2.3.04', '01.2.3.4', '256.1.1.1', '1.2.3.-4', '1.2.3.4 ',
  ' 1.2.3.4', '1..2.3', '0x1.2.3.4', '1.2.3.4%eth0', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9:a',
  '1::2::3', '1:::2', ':1::', '1::2:', '12345::', 'g::', '::1.2.3', '::1.2.3.04', '1.2.3.4::', '1:2:3:4:5:6:7:1.2.3.4',
  '1:2:3:4:5:6:7::1.2.3.4', '1:2:3:4:5:6::1.2.3.4', '1:2:3:4::5:6:7:8', '::1.2.3.4:5', 'fe80::1%eth0', '[::1]',
  '1:2:3:4:5:6:7:8::',
];

const ipChars = fc.constantFrom(...'0123456789abcdefABCDEF:::...%x '.split(''));
/** Strings made of the characters addresses are made of: mostly invalid, some valid. */
const addressLike = fc.array(ipChars, { maxLength: 48 }).map((a) => a.join(''));
/** Valid addresses with one character inserted, deleted or replaced. */
const nearlyValid = fc
  .tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat(), ipChars, fc.integer({ min: 0, max: 2 }))
  .map(([s, at, c, op]) => {
    const i = at % (s.length + 1);
    if (op === 0) return s.slice(0, i) + c + s.slice(i);
    if (op === 1) return s.slice(0, i) + s.slice(i + 1);
    return s.slice(0, i) + c + s.slice(i + 1);
  });
const hexGroup = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((g) => g.toString(16)),
  fc.integer({ min: 0, max: 0xfffff }).map((g) => g.toString(16).toUpperCase().padStart(5, '0')),
);
/** 0–10 hex groups, "::" somewhere or not, maybe a dotted IPv4 tail: around the group-count limits. */
const groupLike = fc
  .tuple(
    fc.integer({ min: 0, max: 10 }).chain((n) => fc.array(hexGroup, { minLength: n, maxLength: n })),
    fc.option(fc.nat(10)),
    fc.option(fc.ipV4()),
  )
  .map(([groups, gap, quad]) => {
    const parts = quad === null ? groups : [...groups, quad];
    if (gap === null) return parts.join(':');
    const at = gap % (parts.length + 1);
    return `${parts.slice(0, at).join(':')}::${parts.slice(at).join(':')}`;
  });
const anyText = fc.oneof(addressLike, nearlyValid, groupLike, fc.constantFrom(...MALFORMED), fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string());
/** 16 bytes with many zero groups (so "::" placement is exercised) or uniformly random. */
const bytes16 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.array(fc.constantFrom(0, 0, 0, 0, 1, 0xff), { minLength: 16, maxLength: 16 }).map((a) => Uint8Array.from(a)),
);

// ---------------------------------------------------------------------------------------------

test('known addresses parse to their bytes', () => {
  const cases: [string, string | null][] = [
    ['0.0.0.0', '00000000'],
    ['192.0.2.1', 'c0000201'],
    ['255.255.255.255', 'ffffffff'],
    ['10.200.3.7', '0ac80307'],
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['2001:DB8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
    ['fd0d:e100:d3c5::', 'fd0de100d3c500000000000000000000'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
    ['1::2:3:4:5:6:7', '00010000000200030004000500060007'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '00000000000000000000000000000001'],
  ];
  for (const [text, want] of cases) assert.equal(hex(parseIp(text)), want, text);
});

test('malformed addresses are refused', () => {
  for (const s of MALFORMED) assert.equal(parseIp(s), null, JSON.stringify(s));
});

test('formatting: dotted quads, RFC 5952 IPv6, and the IPv4-mapped choices', () => {
  const cases: [string, string][] = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longer run, not the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['FD0D:E100::ABCD', 'fd0d:e100::abcd'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ];
  for (const [text, want] of cases) assert.equal(formatIp(parseIp(text)!), want, text);
  assert.equal(formatIp(Uint8Array.of(10, 0, 0, 1)), '10.0.0.1');
  const mapped = parseIPv6('::ffff:198.51.100.7')!;
  assert.ok(isV4MappedAt(mapped, 0));
  assert.equal(formatIp16(mapped), '198.51.100.7');
  assert.equal(formatIPv6(mapped), '::ffff:c633:6407');
  assert.equal(formatIp16(parseIPv6('2001:db8::7')!), '2001:db8::7');
  assert.ok(!isV4MappedAt(parseIPv6('::fffe:1.2.3.4')!, 0));
  assert.ok(!isV4MappedAt(parseIPv6('1::ffff:1.2.3.4')!, 0));
});

test('zones: only parseIpZoned and parseIp16At accept them, and only on IPv6', () => {
  assert.equal(hex(parseIpZoned('fe80::1%eth0')), 'fe800000000000000000000000000001');
  assert.equal(hex(parseIpZoned('fe80::1%')), 'fe800000000000000000000000000001');
  assert.equal(parseIpZoned('1.2.3.4%eth0'), null);
  assert.equal(hex(parseIpZoned('1.2.3.4')), '01020304');
  assert.equal(parseIp('fe80::1%eth0'), null);
  const out = new Uint8Array(16);
  assert.ok(parseIp16At('fe80::2%3', out, 0));
  assert.equal(hex(out), 'fe800000000000000000000000000002');
  assert.ok(!parseIp16At('1.2.3.4%3', out, 0));
});

test('the At forms write only their own bytes, at their offset', () => {
  const buf = new Uint8Array(40).fill(0xaa);
  assert.ok(parseIPv6At('x2001:db8::1y', 1, 12, buf, 3));
  assert.equal(hex(buf.subarray(3, 19)), '20010db8000000000000000000000001');
  assert.ok(buf.subarray(0, 3).every((x) => x === 0xaa) && buf.subarray(19).every((x) => x === 0xaa));
  buf.fill(0xaa);
  assert.ok(parseIPv4At('[10.1.2.3]', 1, 9, buf, 5));
  assert.equal(hex(buf.subarray(5, 9)), '0a010203');
  assert.ok(buf.subarray(0, 5).every((x) => x === 0xaa) && buf.subarray(9).every((x) => x === 0xaa));
  buf.fill(0xaa);
  assert.ok(parseIp16At('192.0.2.9', buf, 20));
  assert.equal(hex(buf.subarray(20, 36)), '00000000000000000000ffffc0000209');
  assert.ok(buf.subarray(0, 20).every((x) => x === 0xaa) && buf.subarray(36).every((x) => x === 0xaa));
  assert.equal(formatIPv4(buf, 32), '192.0.2.9');
  assert.equal(formatIp16(buf, 20), '192.0.2.9');
});

test('parsing agrees with node:net isIP and with the naive reference, and never throws', () => {
  fc.assert(
    fc.property(anyText, (s) => {
      const v4 = parseIPv4(s);
      const v6 = parseIPv6(s);
      const family = isIP(s);
      assert.equal(v4 !== null, family === 4, `IPv4 ${JSON.stringify(s)}`);
      assert.equal(v6 !== null, family === 6 && !s.includes('%'), `IPv6 ${JSON.stringify(s)}`);
      assert.deepEqual(v4 === null ? null : [...v4], naiveV4(s));
      assert.deepEqual(v6 === null ? null : [...v6], naiveV6(s));
      assert.deepEqual(parseIp(s), s.includes(':') ? v6 : v4);
      // Whether or not the text parses, nothing outside the bytes at the offset is written.
      const slot = new Uint8Array(48);
      const untouchedAround = (from: number, to: number): boolean =>
        slot.subarray(0, from).every((x) => x === 0xaa) && slot.subarray(to).every((x) => x === 0xaa);
      slot.fill(0xaa);
      const ok16 = parseIp16At(s, slot, 16);
      assert.equal(ok16, parseIpZoned(s) !== null);
      if (ok16) assert.equal(hex(slot.subarray(16, 32)), hex(parseIp16Reference(parseIpZoned(s)!)));
      assert.ok(untouchedAround(16, 32), JSON.stringify(s));
      slot.fill(0xaa);
      parseIPv6At(s, 0, s.length, slot, 16);
      assert.ok(untouchedAround(16, 32), JSON.stringify(s));
      slot.fill(0xaa);
      parseIPv4At(s, 0, s.length, slot, 16);
      assert.ok(untouchedAround(16, 20), JSON.stringify(s));
    }),
    { numRuns: 20000 },
  );
});

test('format → parse and parse → format round trips', () => {
  fc.assert(
    fc.property(bytes16, (b) => {
      const text = formatIPv6(b);
      assert.deepEqual(parseIPv6(text), b);
      assert.equal(text, naiveFormatV6(b));
      assert.equal(text, urlFormatV6(text));
      assert.equal(isIP(text), 6);
      assert.equal(formatIp16(b), isV4MappedAt(b, 0) ? formatIPv4(b, 12) : text);
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
      const text = formatIp(b);
      assert.equal(isIP(text), 4);
      assert.deepEqual(parseIPv4(text), b);
      const mapped = new Uint8Array(16);
      assert.ok(parseIp16At(text, mapped, 0));
      assert.equal(formatIp16(mapped), text);
    }),
  );
  fc.assert(
    fc.property(fc.oneof(fc.ipV6(), fc.ipV4()), (s) => {
      const b = parseIp(s);
      assert.ok(b !== null, s);
      const text = formatIp(b);
      assert.deepEqual(parseIp(text), b);
      if (b.length === 16) assert.equal(text, urlFormatV6(s));
      else assert.equal(text, s); // fc.ipV4 gives canonical dotted quads
    }),
    { numRuns: 5000 },
  );
});

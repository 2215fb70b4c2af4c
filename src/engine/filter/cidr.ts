/**
 * Prefixes as the filter stores them: four big-endian 32-bit words held as signed int32, with a
 * mask per word, so matching is `(word & mask) === addr` with no allocation. Parsing is for
 * policy compilation (not the hot path) and throws MeshdError('E_ACL_INVALID') on bad input.
 */
import { MeshdError } from '../../errors.js';
import { parseIPv4, parseIPv6 } from '../../util/ip.js';
import type { Prefix, SourceCheck } from './types.js';

type Words = [number, number, number, number];

function invalid(what: string): MeshdError {
  return new MeshdError('E_ACL_INVALID', what, {
    hint: 'use an address or prefix like 10.200.0.0/16, 10.200.3.7, fd0d:e100:d3c5::/48',
  });
}

function isDigits(s: string, max: number): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** "a.b.c.d" → int32, or null. Leading zeros are refused (they are octal to some tools). */
export function parseIPv4Word(s: string): number | null {
  const b = parseIPv4(s);
  return b === null ? null : readWord(b, 0);
}

/** IPv6 text (no zone, no brackets) → four int32 words, or null. */
export function parseIPv6Words(s: string): Words | null {
  const b = parseIPv6(s);
  return b === null ? null : [readWord(b, 0), readWord(b, 4), readWord(b, 8), readWord(b, 12)];
}

/** Mask word i of a prefix of `bits` bits. */
export function maskWord(bits: number, i: number): number {
  const b = bits - 32 * i;
  if (b <= 0) return 0;
  if (b >= 32) return -1;
  return (-1 << (32 - b)) | 0;
}

/** "10.200.0.0/16", "10.200.3.7" (a host), "fd0d:e100:d3c5::/48", "::/0". Host bits must be 0. */
export function parsePrefix(text: string): Prefix {
  if (typeof text !== 'string') throw invalid(`address or prefix must be a string, got ${typeof text}`);
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const family: 4 | 6 = addrText.includes(':') ? 6 : 4;
  let addr: Words;
  if (family === 4) {
    const w = parseIPv4Word(addrText);
    if (w === null) throw invalid(`invalid IPv4 address in "${text}"`);
    addr = [w, 0, 0, 0];
  } else {
    const w = parseIPv6Words(addrText);
    if (w === null) throw invalid(`invalid IPv6 address in "${text}"`);
    addr = w;
  }
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash !== -1) {
    const b = text.slice(slash + 1);
    if (!isDigits(b, 3) || (b.length > 1 && b[0] === '0') || Number(b) > max) {
      throw invalid(`invalid prefix length in "${text}" (0 to ${max})`);
    }
    bits = Number(b);
  }
  const mask: Words = [maskWord(bits, 0), maskWord(bits, 1), maskWord(bits, 2), maskWord(bits, 3)];
  for (let i = 0; i < 4; i++) {
    if ((addr[i]! & ~mask[i]!) !== 0) throw invalid(`prefix "${text}" has host bits set`);
  }
  return { family, bits, addr, mask };
}

function hex16(v: number): string {
  return (v & 0xffff).toString(16);
}

/** Text form of a prefix (IPv6 without "::" compression; for logs and status). */
export function formatPrefix(p: Prefix): string {
  const a = p.addr;
  if (p.family === 4) {
    const w = a[0];
    return `${(w >>> 24) & 255}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}/${p.bits}`;
  }
  const g: string[] = [];
  for (let i = 0; i < 4; i++) g.push(hex16(a[i]! >>> 16), hex16(a[i]!));
  return `${g.join(':')}/${p.bits}`;
}

/** Read 4 bytes big-endian as int32. */
export function readWord(buf: Uint8Array, o: number): number {
  return (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
}

/** Does `p` contain the address at buf[off] (4 bytes if p is IPv4, 16 if IPv6)? */
export function prefixContainsAt(p: Prefix, buf: Uint8Array, off: number): boolean {
  const a = p.addr;
  const m = p.mask;
  if ((readWord(buf, off) & m[0]) !== a[0]) return false;
  if (p.family === 4) return true;
  return (
    (readWord(buf, off + 4) & m[1]) === a[1] && (readWord(buf, off + 8) & m[2]) === a[2] && (readWord(buf, off + 12) & m[3]) === a[3]
  );
}

/**
 * A SourceCheck from a fixed list of prefixes (a peer's mesh addresses and allowed IPs), for
 * callers without an allowed-IPs trie at hand, and for tests. Allocates nothing per call.
 */
export function sourceCheckFromPrefixes(prefixes: readonly (string | Prefix)[]): SourceCheck {
  const parsed = prefixes.map((p) => (typeof p === 'string' ? parsePrefix(p) : p));
  const v4 = parsed.filter((p) => p.family === 4);
  const v6 = parsed.filter((p) => p.family === 6);
  return (buf, off, version) => {
    const list = version === 4 ? v4 : v6;
    for (let i = 0; i < list.length; i++) if (prefixContainsAt(list[i]!, buf, off)) return true;
    return false;
  };
}

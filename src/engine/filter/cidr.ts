/**
 * Prefixes as the filter stores them: four big-endian 32-bit words held as signed int32, with a
 * mask per word, so matching is `(word & mask) === addr` with no allocation. The words are built
 * from util/prefix's parsed value (the one prefix parser; host bits rejected, as in every ACL
 * input); parsing is for policy compilation (not the hot path) and throws
 * MeshdError('E_ACL_INVALID') on bad input.
 */
import { MeshdError } from '../../errors.js';
import { formatPrefix as formatIpPrefix, makePrefix, parsePrefix as parseIpPrefix, PrefixError, type IpPrefix } from '../../util/prefix.js';
import type { Prefix, SourceCheck } from './types.js';

type Words = [number, number, number, number];

/** Mask word i of a prefix of `bits` bits. */
export function maskWord(bits: number, i: number): number {
  const b = bits - 32 * i;
  if (b <= 0) return 0;
  if (b >= 32) return -1;
  return (-1 << (32 - b)) | 0;
}

/** The filter's word form of a parsed prefix. */
export function prefixWords(p: IpPrefix): Prefix {
  const a = p.addr;
  const addr: Words = p.family === 4 ? [readWord(a, 0), 0, 0, 0] : [readWord(a, 0), readWord(a, 4), readWord(a, 8), readWord(a, 12)];
  const mask: Words = [maskWord(p.bits, 0), maskWord(p.bits, 1), maskWord(p.bits, 2), maskWord(p.bits, 3)];
  return { family: p.family, bits: p.bits, addr, mask };
}

/** "10.200.0.0/16", "10.200.3.7" (a host), "fd0d:e100:d3c5::/48", "::/0". Host bits must be 0. */
export function parsePrefix(text: string): Prefix {
  try {
    return prefixWords(parseIpPrefix(text, { hostBits: 'reject' }));
  } catch (e) {
    if (!(e instanceof PrefixError)) throw e;
    throw new MeshdError('E_ACL_INVALID', e.message, { hint: e.hint });
  }
}

/** Text form of a prefix (canonical, as util/prefix writes it; for logs and status). */
export function formatPrefix(p: Prefix): string {
  const b = new Uint8Array(p.family === 4 ? 4 : 16);
  for (let i = 0; i < b.length; i += 4) {
    const w = p.addr[i / 4]!;
    b[i] = w >>> 24;
    b[i + 1] = (w >>> 16) & 255;
    b[i + 2] = (w >>> 8) & 255;
    b[i + 3] = w & 255;
  }
  return formatIpPrefix(makePrefix(b, p.bits));
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

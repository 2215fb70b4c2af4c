/**
 * IP address text ↔ bytes, the one way: 4 bytes for IPv4, 16 for IPv6, big-endian.
 *
 * Parsing is strict, as node:net's isIP and inet_pton are: an IPv4 address is exactly four
 * decimal parts 0–255 without leading zeros; an IPv6 address is eight hex groups of one to four
 * digits, at most one "::" standing for one or more zero groups, and optionally a dotted IPv4
 * address as its last 32 bits. No zone ("%eth0") and no brackets unless a function says so.
 * Parsers return null or false on malformed input, never throw.
 *
 * The `…At` forms read s[start, end) and write into out[off…] without allocating, for the
 * packet path (PacketBatch addrs); on failure the bytes they were given are left unspecified.
 *
 * Formatting: IPv4 as a dotted quad, IPv6 in RFC 5952 form (lower-case hex, leading zeros
 * dropped, the longest run of two or more zero groups — the first of equal runs — as "::"),
 * without the mixed "::ffff:a.b.c.d" notation; `formatIp16` gives an IPv4-mapped address as its
 * plain dotted quad instead.
 */

/** Longest IPv6 text without a zone: six full groups and a dotted quad. */
const MAX_IPV6_TEXT = 45;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Dotted-quad text s[start, end) into out[off, off+4). */
export function parseIPv4At(s: string, start: number, end: number, out: Uint8Array, off: number): boolean {
  let part = 0;
  let octet = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      // '.'
      if (digits === 0 || part === 3) return false;
      out[off + part++] = octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return false; // a leading zero
      octet = octet * 10 + (c - 48);
      if (octet > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3) return false;
  out[off + 3] = octet;
  return true;
}

/** IPv6 text s[start, end) (no zone, no brackets) into out[off, off+16). */
export function parseIPv6At(s: string, start: number, end: number, out: Uint8Array, off: number): boolean {
  if (end - start < 2 || end - start > MAX_IPV6_TEXT) return false;
  let groups = 0;
  let gap = -1; // group index where "::" stands
  let i = start;
  if (s.charCodeAt(i) === 58) {
    if (s.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
    if (i === end) {
      out.fill(0, off, off + 16);
      return true;
    }
  }
  for (;;) {
    let value = 0;
    let j = i;
    while (j < end && j - i < 4) {
      const d = hexValue(s.charCodeAt(j));
      if (d < 0) break;
      value = (value << 4) | d;
      j++;
    }
    if (j < end && s.charCodeAt(j) === 46) {
      // a dotted IPv4 tail: the rest of the text, the last 32 bits
      if (groups > 6 || !parseIPv4At(s, i, end, out, off + 2 * groups)) return false;
      groups += 2;
      break;
    }
    if (j === i || groups === 8) return false;
    out[off + 2 * groups] = value >> 8;
    out[off + 2 * groups + 1] = value & 0xff;
    groups++;
    if (j === end) break;
    if (s.charCodeAt(j) !== 58) return false; // also a fifth hex digit
    j++;
    if (j < end && s.charCodeAt(j) === 58) {
      if (gap !== -1) return false;
      gap = groups;
      j++;
      if (j === end) break;
    } else if (j === end) {
      return false; // a trailing single ':'
    }
    i = j;
  }
  if (gap === -1) return groups === 8;
  if (groups > 7) return false;
  const after = groups - gap;
  out.copyWithin(off + 16 - 2 * after, off + 2 * gap, off + 2 * groups);
  out.fill(0, off + 2 * gap, off + 16 - 2 * after);
  return true;
}

/** "a.b.c.d" → 4 bytes, or null. */
export function parseIPv4(s: string): Uint8Array | null {
  const out = new Uint8Array(4);
  return parseIPv4At(s, 0, s.length, out, 0) ? out : null;
}

/** IPv6 text (no zone, no brackets) → 16 bytes, or null. */
export function parseIPv6(s: string): Uint8Array | null {
  const out = new Uint8Array(16);
  return parseIPv6At(s, 0, s.length, out, 0) ? out : null;
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address; text with a ':' is taken as IPv6. */
export function parseIp(s: string): Uint8Array | null {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

/** Where the address ends in text that may carry an IPv6 zone: at '%' for IPv6, else the end. */
function addressEnd(s: string): number {
  const zone = s.indexOf('%');
  return zone !== -1 && s.includes(':') ? zone : s.length;
}

/** Like parseIp, but an IPv6 address may carry a "%zone", which is dropped (IPv4 may not). */
export function parseIpZoned(s: string): Uint8Array | null {
  const end = addressEnd(s);
  return end === s.length ? parseIp(s) : parseIPv6(s.slice(0, end));
}

/**
 * Text into the 16-byte layout of PacketBatch addrs, disco and DERP: IPv6 as is (a "%zone"
 * dropped), IPv4 as the IPv4-mapped ::ffff:a.b.c.d. Writes out[off, off+16) only; allocates
 * nothing.
 */
export function parseIp16At(s: string, out: Uint8Array, off: number): boolean {
  if (s.includes(':')) return parseIPv6At(s, 0, addressEnd(s), out, off);
  out.fill(0, off, off + 10);
  out[off + 10] = 0xff;
  out[off + 11] = 0xff;
  return parseIPv4At(s, 0, s.length, out, off + 12);
}

/** Are the 16 bytes at b[off] an IPv4-mapped address (::ffff:0:0/96)? */
export function isV4MappedAt(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

/** The 4 bytes at b[off] as a dotted quad. */
export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** The 16 bytes at b[off] in RFC 5952 form (all hex, also for IPv4-mapped addresses). */
export function formatIPv6(b: Uint8Array, off = 0): string {
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    if (b[off + 2 * i] === 0 && b[off + 2 * i + 1] === 0) {
      if (runStart === -1) runStart = i;
      if (i - runStart + 1 > bestLen) {
        bestStart = runStart;
        bestLen = i - runStart + 1;
      }
    } else {
      runStart = -1;
    }
  }
  const resume = bestStart + bestLen; // the group after "::" (0 when there is none)
  let text = '';
  for (let i = 0; i < 8; ) {
    if (i === bestStart) {
      text += '::';
      i = resume;
      continue;
    }
    if (i > 0 && i !== resume) text += ':';
    text += ((b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!).toString(16);
    i++;
  }
  return text;
}

/** 4 bytes as a dotted quad, 16 as RFC 5952 IPv6 (IPv4-mapped ones too, in hex). */
export function formatIp(b: Uint8Array): string {
  return b.length === 4 ? formatIPv4(b, 0) : formatIPv6(b, 0);
}

/** The 16 bytes at b[off] as text, an IPv4-mapped address as its dotted quad. */
export function formatIp16(b: Uint8Array, off = 0): string {
  return isV4MappedAt(b, off) ? formatIPv4(b, off + 12) : formatIPv6(b, off);
}

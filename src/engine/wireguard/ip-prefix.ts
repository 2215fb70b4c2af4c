/**
 * IP addresses and prefixes as bytes: parsing "10.0.0.1", "fd00::1", "10.0.0.0/24", and
 * formatting them back. Parsers return null on malformed input (never throw).
 */

export interface IpPrefix {
  /** 4 or 16 bytes, host bits cleared. */
  readonly addr: Uint8Array;
  readonly bits: number;
}

export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

export function parseIPv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45) return null;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.includes('.')) {
        if (i !== items.length - 1) return null;
        const v4 = parseIPv4(it);
        if (v4 === null) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return null;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  let all: number[];
  if (dbl === -1) {
    const g = groups(s);
    if (g === null || g.length !== 8) return null;
    all = g;
  } else {
    const head = groups(s.slice(0, dbl));
    const tail = groups(s.slice(dbl + 2));
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}

/** An IPv4 or IPv6 address (no zone, no brackets). */
export function parseIp(s: string): Uint8Array | null {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

/** "addr/bits" (or a bare address, meaning a host prefix). Host bits are cleared. */
export function parsePrefix(s: string): IpPrefix | null {
  const slash = s.indexOf('/');
  const addrPart = slash === -1 ? s : s.slice(0, slash);
  const addr = parseIp(addrPart);
  if (addr === null) return null;
  const max = addr.length * 8;
  let bits = max;
  if (slash !== -1) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > max) return null;
  }
  return { addr: maskBytes(addr, bits), bits };
}

export function maskBytes(addr: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    out[i] = keep <= 0 ? 0 : out[i]! & (0xff << (8 - keep));
  }
  return out;
}

export function formatIp(addr: Uint8Array): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((addr[2 * i]! << 8) | addr[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart === -1) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.addr)}/${p.bits}`;
}

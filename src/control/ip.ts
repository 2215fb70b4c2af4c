/**
 * IP addresses and prefixes as the control plane needs them: parse and validate (returning
 * null rather than throwing), canonical text, containment. Values are bigints so IPv4 and IPv6
 * share one code path.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface IpAddr {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

function parseV4(s: string): bigint | null {
  if (!isIPv4(s)) return null;
  let v = 0n;
  for (const part of s.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function parseV6(s: string): bigint | null {
  if (!isIPv6(s) || s.includes('%')) return null;
  let text = s;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseV4(last);
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const double = text.indexOf('::');
  const parts = (x: string) => (x === '' ? [] : x.split(':'));
  let groups: string[];
  if (double >= 0) {
    const h = parts(text.slice(0, double));
    const r = parts(text.slice(double + 2));
    if (h.length + r.length > 7) return null;
    groups = [...h, ...new Array<string>(8 - h.length - r.length).fill('0'), ...r];
  } else {
    groups = parts(text);
  }
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export function parseIp(s: string): IpAddr | null {
  if (typeof s !== 'string' || s.length > 64) return null;
  const v4 = parseV4(s);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseV6(s);
  return v6 === null ? null : { family: 6, value: v6 };
}

export function formatIp(a: IpAddr): string {
  if (a.family === 4) {
    const v = Number(a.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function canonicalIp(s: string): string | null {
  const a = parseIp(s);
  return a === null ? null : formatIp(a);
}

function width(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function mask(family: 4 | 6, bits: number): bigint {
  const w = width(family);
  return bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(w - bits);
}

/** Parse `addr/len` (or a bare address, as a host prefix). Host bits must be zero. */
export function parseCidr(s: string): Cidr | null {
  if (typeof s !== 'string' || s.length > 70) return null;
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return null;
  const w = width(addr.family);
  let bits = w;
  if (slash >= 0) {
    const len = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(len)) return null;
    bits = Number(len);
    if (bits > w) return null;
  }
  if ((addr.value & ~mask(addr.family, bits) & ((1n << BigInt(w)) - 1n)) !== 0n) return null;
  return { family: addr.family, base: addr.value, bits };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.base })}/${c.bits}`;
}

export function cidrContains(c: Cidr, a: IpAddr): boolean {
  return c.family === a.family && (a.value & mask(c.family, c.bits)) === c.base;
}

/** The host prefix (/32 or /128) of an address. */
export function hostCidr(s: string): string | null {
  const a = parseIp(s);
  return a === null ? null : `${formatIp(a)}/${width(a.family)}`;
}

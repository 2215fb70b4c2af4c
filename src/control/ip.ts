/**
 * IP addresses and prefixes as the control plane needs them: parse and validate (returning
 * null rather than throwing), canonical text, containment. Values are bigints so IPv4 and IPv6
 * share one code path.
 */
import { formatIp as formatIpBytes, parseIp as parseIpBytes } from '../util/ip.js';

export interface IpAddr {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

function toValue(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = 0; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

function toBytes(a: IpAddr): Uint8Array {
  const b = new Uint8Array(a.family === 4 ? 4 : 16);
  let v = a.value;
  for (let i = b.length - 1; i >= 0; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
}

/** Strict IPv4 or IPv6 text (no leading zeros in IPv4, no zone); null when malformed. */
export function parseIp(s: string): IpAddr | null {
  if (typeof s !== 'string' || s.length > 64) return null;
  const b = parseIpBytes(s);
  return b === null ? null : { family: b.length === 4 ? 4 : 6, value: toValue(b) };
}

/** Dotted quad, or RFC 5952 IPv6 (IPv4-mapped addresses in hex: ::ffff:102:304). */
export function formatIp(a: IpAddr): string {
  return formatIpBytes(toBytes(a));
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

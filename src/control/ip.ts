/**
 * IP addresses as the control plane needs them: parse and validate (returning null rather than
 * throwing) and canonical text. Values are bigints so address arithmetic (assigning the next
 * free mesh address) is one code path for IPv4 and IPv6. Prefixes are util/prefix's.
 */
import { formatIp as formatIpBytes, parseIp as parseIpBytes } from '../util/ip.js';

export interface IpAddr {
  family: 4 | 6;
  value: bigint;
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

/**
 * The mesh address a DID gets: host part = 2 + (first 4 bytes of SHA-256(DID), as an
 * unsigned big-endian integer, mod (2^hostbits − 3)); IPv6 = fd0d:e100:d3c5::/48 with a 64-bit
 * interface id from the first 8 bytes of the same hash. The DID is hashed in its canonical form
 * so that two spellings of one did:jwk get one address.
 */
import { createHash } from 'node:crypto';
import { canonicalDid } from './did-jwk.js';
import { UsageError } from '../errors.js';
import { parseIPv4 } from '../util/ip.js';
import { parsePrefix, PrefixError, type IpPrefix } from '../util/prefix.js';

export const DEFAULT_MESH_CIDR = '10.200.0.0/16';
export const DEFAULT_MESH_CIDR6 = 'fd0d:e100:d3c5::/48';

export interface Ipv4Cidr {
  base: number;
  bits: number;
}

/** Strict dotted quad → unsigned 32-bit number, or null. */
export function parseIpv4(s: string): number | null {
  const b = parseIPv4(s);
  return b === null ? null : ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function formatIpv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** The mesh's IPv4 prefix (a user's choice, so host bits are refused): /8 to /30, length written. */
export function parseIpv4Cidr(s: string): Ipv4Cidr {
  const hint = 'use a prefix like 10.200.0.0/16 (/8 to /30)';
  let p: IpPrefix;
  try {
    p = parsePrefix(s, { hostBits: 'reject', bare: 'reject' });
  } catch (e) {
    if (!(e instanceof PrefixError)) throw e;
    throw new UsageError(e.reason === 'host-bits' ? `CIDR "${s}" has host bits set` : `invalid IPv4 CIDR "${s}"`, { hint });
  }
  if (p.family !== 4 || p.bits < 8 || p.bits > 30) throw new UsageError(`invalid IPv4 CIDR "${s}"`, { hint });
  return { base: p.addr.reduce((v, b) => v * 256 + b, 0), bits: p.bits };
}

function didHash(did: string): Buffer {
  return createHash('sha256').update(canonicalDid(did), 'utf8').digest();
}

/** The host number (offset inside the CIDR) a DID would get. */
export function meshHostNumber(did: string, hostBits: number): number {
  const h = didHash(did).readUInt32BE(0);
  return 2 + (h % (2 ** hostBits - 3));
}

export function meshIPv4For(did: string, cidr = DEFAULT_MESH_CIDR): string {
  const c = parseIpv4Cidr(cidr);
  return formatIpv4((c.base + meshHostNumber(did, 32 - c.bits)) >>> 0);
}

export function meshIPv6For(did: string): string {
  const iid = didHash(did).subarray(0, 8);
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(iid.readUInt16BE(i).toString(16));
  return `fd0d:e100:d3c5:0:${groups.join(':')}`;
}

/**
 * IP addresses and prefixes as bytes: parsing "10.0.0.1", "fd00::1", "10.0.0.0/24", and
 * formatting them back. Parsers return null on malformed input (never throw).
 */
import { formatIp, parseIPv4, parseIPv6 } from '../../util/ip.js';

export interface IpPrefix {
  /** 4 or 16 bytes, host bits cleared. */
  readonly addr: Uint8Array;
  readonly bits: number;
}

export { formatIp, parseIPv4, parseIPv6 };

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

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.addr)}/${p.bits}`;
}

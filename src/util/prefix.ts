/**
 * IP prefixes ("10.200.0.0/16", "fd0d:e100:d3c5::/48"), the one parser, built on util/ip's
 * address parser. An `IpPrefix` is the family, the network address as bytes (4 or 16,
 * big-endian, host bits always zero) and the prefix length.
 *
 * Text: ADDRESS[/LENGTH]. The address is what util/ip accepts (strict: no leading zeros in IPv4,
 * no zone, no brackets). The length is decimal 0–32 or 0–128 without leading zeros ("/08" is
 * refused, as Go's netip.ParsePrefix refuses it). Without a length, an address is its host
 * prefix (/32 or /128) unless the policy says `bare: 'reject'`.
 *
 * Host bits (bits set after the length, as in 10.0.0.1/24) — the policy is explicit at every
 * call site:
 * - `hostBits: 'reject'` for what a person or a peer wrote and we store, compare or sign: ACL
 *   policies and the filter compiled from them, network and route records, `--advertise-routes`,
 *   the mesh CIDR given to `network create`. A prefix with host bits there is a mistake (did
 *   10.0.0.1/24 mean the host or the network?), so it is refused rather than guessed.
 * - `hostBits: 'mask'` where the text is an interface address or follows wg(8)'s convention:
 *   the data plane's own addresses ("10.200.3.7/16" → 10.200.0.0/16), allowed IPs in a
 *   wg-quick file or the engine's config (wg masks AllowedIPs the same way), the host's own
 *   networks as the OS lists them.
 * `parseInterfaceAddress` keeps both halves of an interface address (the address and its
 * prefix) for `ip addr`.
 *
 * Before this module five parsers disagreed; the differences settled here: leading zeros in the
 * length are refused everywhere (the filter refused them, the others accepted "/024"); text
 * longer than any prefix can be is refused before it is parsed; a non-string is refused with the
 * same error. Every parse failure is a PrefixError (E_PREFIX_INVALID) with a `reason`; nothing
 * else is ever thrown for any input.
 */
import { PrefixError } from '../errors.js';
import { formatIp, parseIp } from './ip.js';

export { PrefixError };

export interface IpPrefix {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, big-endian, host bits zero. Never mutated after construction. */
  readonly addr: Uint8Array;
  /** 0–32 for IPv4, 0–128 for IPv6. */
  readonly bits: number;
}

export interface PrefixPolicy {
  /** 'reject': host bits set is an error; 'mask': they are cleared. */
  readonly hostBits: 'reject' | 'mask';
  /** 'host' (the default): a bare address is its host prefix; 'reject': "/LENGTH" must be written. */
  readonly bare?: 'host' | 'reject';
}

/** Longest prefix text: 45 characters of IPv6 (util/ip's limit) and "/128". */
const MAX_PREFIX_TEXT = 49;

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}

/** A copy of `addr` with every bit after the first `bits` cleared. */
export function maskBytes(addr: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    out[i] = keep <= 0 ? 0 : out[i]! & (0xff << (8 - keep));
  }
  return out;
}

function hasHostBits(addr: Uint8Array, bits: number): boolean {
  for (let i = 0; i < addr.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    const hostMask = keep <= 0 ? 0xff : 0xff >> keep;
    if ((addr[i]! & hostMask) !== 0) return true;
  }
  return false;
}

/** The prefix of `bits` bits that holds `addr` (4 or 16 bytes); host bits are cleared. */
export function makePrefix(addr: Uint8Array, bits: number): IpPrefix {
  if (addr.length !== 4 && addr.length !== 16) throw new PrefixError('address', `an address is 4 or 16 bytes, not ${addr.length}`);
  const max = addr.length * 8;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new PrefixError('length', `invalid prefix length ${bits} (0 to ${max})`);
  return { family: addr.length === 4 ? 4 : 6, addr: maskBytes(addr, bits), bits };
}

/** The host prefix (/32 or /128) of an address given as bytes. */
export function hostPrefix(addr: Uint8Array): IpPrefix {
  return makePrefix(addr, addr.length * 8);
}

interface Lexed {
  addr: Uint8Array;
  bits: number;
  lengthGiven: boolean;
}

/** ADDRESS[/LENGTH] → the address as written (host bits kept) and the length. */
function lex(text: unknown): Lexed {
  if (typeof text !== 'string') throw new PrefixError('not-text', `address or prefix must be a string, got ${text === null ? 'null' : typeof text}`);
  if (text.length > MAX_PREFIX_TEXT) throw new PrefixError('address', `${quote(text)} is too long to be an IP prefix`);
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (addr === null) throw new PrefixError('address', `invalid IPv${addrText.includes(':') ? 6 : 4} address in ${quote(text)}`);
  const max = addr.length * 8;
  if (slash === -1) return { addr, bits: max, lengthGiven: false };
  const len = text.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(len) || Number(len) > max) {
    throw new PrefixError('length', `invalid prefix length in ${quote(text)} (0 to ${max}, no leading zeros)`);
  }
  return { addr, bits: Number(len), lengthGiven: true };
}

/** Parse ADDRESS[/LENGTH] under `policy`; throws PrefixError (and nothing else) on any bad input. */
export function parsePrefix(text: unknown, policy: PrefixPolicy): IpPrefix {
  const { addr, bits, lengthGiven } = lex(text);
  if (!lengthGiven && policy.bare === 'reject') throw new PrefixError('length', `${quote(text as string)} has no prefix length (write ADDRESS/LENGTH)`);
  if (policy.hostBits === 'reject' && hasHostBits(addr, bits)) {
    throw new PrefixError('host-bits', `prefix ${quote(text as string)} has host bits set (the address must be the first of its prefix, e.g. 192.168.1.0/24)`);
  }
  return makePrefix(addr, bits);
}

/** parsePrefix, with null for any bad input. */
export function tryParsePrefix(text: unknown, policy: PrefixPolicy): IpPrefix | null {
  try {
    return parsePrefix(text, policy);
  } catch (e) {
    if (e instanceof PrefixError) return null;
    throw e;
  }
}

/**
 * An interface address, ADDRESS/LENGTH ("10.200.3.7/16"): the address as written and the
 * prefix it sits in. Host bits are the point. The length is required unless `bare: 'host'`
 * (then a bare address is a /32 or /128, as `ip addr add` takes it).
 */
export function parseInterfaceAddress(text: unknown, opts: { bare?: 'host' | 'reject' } = {}): { addr: Uint8Array; prefix: IpPrefix } {
  const { addr, bits, lengthGiven } = lex(text);
  if (!lengthGiven && opts.bare !== 'host') throw new PrefixError('length', `${quote(text as string)} has no prefix length (write ADDRESS/LENGTH)`);
  return { addr, prefix: makePrefix(addr, bits) };
}

/** Canonical text: the network address (RFC 5952 for IPv6) and the length, always written. */
export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.addr)}/${p.bits}`;
}

/** Do the first `bits` bits of a and b agree? (Same length arrays.) */
function samePrefixBits(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (a[i] !== b[i]) return false;
  if (bits === 0) return true;
  const m = 0xff << (8 - bits);
  return (a[i]! & m) === (b[i]! & m);
}

/** Is `addr` (4 or 16 bytes) in `p`? An address of the other family never is. */
export function containsAddress(p: IpPrefix, addr: Uint8Array): boolean {
  return addr.length === p.addr.length && samePrefixBits(p.addr, addr, p.bits);
}

/** Is every address of `inner` in `outer`? */
export function containsPrefix(outer: IpPrefix, inner: IpPrefix): boolean {
  return outer.family === inner.family && outer.bits <= inner.bits && samePrefixBits(outer.addr, inner.addr, outer.bits);
}

/** Do `a` and `b` share an address (one contains the other)? */
export function overlaps(a: IpPrefix, b: IpPrefix): boolean {
  return a.family === b.family && samePrefixBits(a.addr, b.addr, Math.min(a.bits, b.bits));
}

/** Same family, length and network address. */
export function prefixEquals(a: IpPrefix, b: IpPrefix): boolean {
  return a.family === b.family && a.bits === b.bits && samePrefixBits(a.addr, b.addr, a.bits);
}

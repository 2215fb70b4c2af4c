/**
 * Addresses as the magic socket keeps them: the PacketBatch `addrs` layout (16-byte IPv6 or
 * IPv4-mapped address, 2-byte big-endian port, 2 reserved bytes), canonical "ip:port" keys, and
 * the synthetic source a packet that came through a relay carries to the WireGuard device.
 *
 * Relay sources: a packet relayed from the peer with endpoint id N is handed to the device with
 * the source fd6d:7368:726c::N (an address no UDP datagram can come from), port 0, and the two
 * reserved bytes set to "RL". The peer's endpoint recognises it in `matches` with a 6-byte
 * compare; `endpointFor` maps it back to the peer.
 */
import { ADDR_SIZE } from '../packet-batch.js';
import { AddrEndpoint } from '../wireguard/addr-endpoint.js';
import type { IpPort } from './stun.js';

export const RELAY_TAG_0 = 0x52; // 'R'
export const RELAY_TAG_1 = 0x4c; // 'L'
const RELAY_PREFIX = [0xfd, 0x6d, 0x73, 0x68, 0x72, 0x6c] as const;

/** Writes the synthetic relay source of endpoint `id` into addrs slot i. */
export function writeRelaySource(addrs: Uint8Array, i: number, id: number): void {
  const o = i * ADDR_SIZE;
  addrs.fill(0, o, o + ADDR_SIZE);
  for (let k = 0; k < RELAY_PREFIX.length; k++) addrs[o + k] = RELAY_PREFIX[k]!;
  addrs[o + 12] = (id >>> 24) & 0xff;
  addrs[o + 13] = (id >>> 16) & 0xff;
  addrs[o + 14] = (id >>> 8) & 0xff;
  addrs[o + 15] = id & 0xff;
  addrs[o + 18] = RELAY_TAG_0;
  addrs[o + 19] = RELAY_TAG_1;
}

/** True when addrs slot i is a relay source (written by writeRelaySource). */
export function isRelaySource(addrs: Uint8Array, i: number): boolean {
  const o = i * ADDR_SIZE;
  return addrs[o + 18] === RELAY_TAG_0 && addrs[o + 19] === RELAY_TAG_1 && addrs[o] === RELAY_PREFIX[0] && addrs[o + 1] === RELAY_PREFIX[1];
}

/** The endpoint id in a relay source. */
export function relaySourceId(addrs: Uint8Array, i: number): number {
  const o = i * ADDR_SIZE;
  return ((addrs[o + 12]! << 24) | (addrs[o + 13]! << 16) | (addrs[o + 14]! << 8) | addrs[o + 15]!) >>> 0;
}

/**
 * A number identifying an IPv4 ip:port in addrs slot i (ip × 65536 + port, exact in a double),
 * or -1 when the slot holds an IPv6 address. Lets the socket look sources up without allocating.
 */
export function v4Key(addrs: Uint8Array, i: number): number {
  const o = i * ADDR_SIZE;
  if (addrs[o + 10] !== 0xff || addrs[o + 11] !== 0xff) return -1;
  for (let k = 0; k < 10; k++) if (addrs[o + k] !== 0) return -1;
  const ip = ((addrs[o + 12]! << 24) | (addrs[o + 13]! << 16) | (addrs[o + 14]! << 8) | addrs[o + 15]!) >>> 0;
  return ip * 65536 + ((addrs[o + 16]! << 8) | addrs[o + 17]!);
}

/** A parsed "ip:port" with its canonical text and its 20-byte addrs form. */
export interface ParsedAddr extends IpPort {
  /** Canonical text: "a.b.c.d:port" or "[v6]:port". */
  readonly key: string;
  /** 20 bytes, addrs layout, reserved bytes zero. */
  readonly addr: Uint8Array;
}

function fromEndpoint(e: AddrEndpoint): ParsedAddr {
  return { ip: e.ip, port: e.port, key: e.toString(), addr: e.addr };
}

/** Parses "ip:port" / "[v6]:port"; null when malformed (port 0 included). */
export function parseAddr(s: string): ParsedAddr | null {
  try {
    return fromEndpoint(AddrEndpoint.parse(s));
  } catch {
    return null;
  }
}

/** The ParsedAddr of addrs slot i (copies). */
export function addrAt(addrs: Uint8Array, i: number): ParsedAddr {
  return fromEndpoint(AddrEndpoint.fromAddrs(addrs, i));
}

/** The ParsedAddr of an IpPort; null when the address or port is unusable. */
export function addrOf(ep: IpPort): ParsedAddr | null {
  return parseAddr(ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`);
}

/** The v4Key of a ParsedAddr (-1 for IPv6). */
export function v4KeyOf(a: ParsedAddr): number {
  return v4Key(a.addr, 0);
}

/**
 * Addresses not worth offering or probing: unspecified, multicast/broadcast, IPv6 link-local
 * (it would need a zone). Loopback is allowed (peers on one machine).
 */
export function isUsableCandidate(a: ParsedAddr): boolean {
  const b = a.addr;
  if (a.port === 0) return false;
  if (v4KeyOf(a) !== -1) {
    const x = b[12]!;
    return x !== 0 && x < 224;
  }
  let zero = true;
  for (let k = 0; k < 16; k++) if (b[k] !== 0) zero = false;
  if (zero) return false;
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return false; // fe80::/10
  return b[0] !== 0xff;
}

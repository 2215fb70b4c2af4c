/**
 * What a datagram on the shared socket is, by its first bytes — one rule for packets from the
 * UDP socket and from a relay. The three formats cannot be confused: WireGuard is a type 1–4
 * then three zero bytes, disco starts with its magic "TS💬", STUN with two zero bits and the
 * magic cookie at bytes 4–7.
 */
import { isDiscoPacket } from './disco.js';
import { isStunPacket } from './stun.js';

export type DatagramKind = 'wireguard' | 'disco' | 'stun' | 'unknown';

/** WireGuard at buf[o, o+len): checked first and without allocating (the hot path). */
export function isWireGuardAt(buf: Uint8Array, o: number, len: number): boolean {
  const t = buf[o]!;
  return len >= 4 && t >= 1 && t <= 4 && buf[o + 1] === 0 && buf[o + 2] === 0 && buf[o + 3] === 0;
}

/** The kind of the datagram buf[off, off+len) (the whole buffer by default). */
export function classifyDatagram(buf: Uint8Array, off = 0, len = buf.length - off): DatagramKind {
  if (isWireGuardAt(buf, off, len)) return 'wireguard';
  const pkt = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
  if (isDiscoPacket(pkt)) return 'disco';
  if (isStunPacket(pkt)) return 'stun';
  return 'unknown';
}

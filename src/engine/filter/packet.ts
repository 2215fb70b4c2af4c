/**
 * Zero-copy parsing of one IP packet at buf[off, off+len) into a reusable PacketInfo. No
 * allocation, no throw: a malformed or truncated packet makes parsePacket return false.
 *
 * What is checked: version; IPv4 IHL and total length (bytes past the total length are ignored,
 * fewer is truncation); IPv6 payload length; the IPv6 extension-header chain (hop-by-hop only
 * first, routing, destination options, fragment, AH; at most 8 headers, each complete); the
 * transport header complete (TCP data offset within the packet, UDP length within the packet).
 * Not checked: IP/TCP/UDP checksums (the packet arrived inside an authenticated WireGuard
 * message and the receiving kernel verifies them).
 *
 * Fragments (decision): only the first fragment carries ports, so only it is matched by the
 * policy. It must hold the whole transport header (RFC 1858 tiny-fragment and RFC 7112 rules);
 * an IPv4 TCP fragment at offset 8 bytes (fragment offset 1) is malformed (RFC 1858 overlap
 * attack). A non-first fragment is marked FRAG_LATER with its identification; the filter
 * accepts it only when the first fragment of the same datagram (same addresses, protocol and
 * id) was accepted shortly before. Fragments that arrive before their first fragment are
 * dropped, as in stateful firewalls that do not reassemble.
 *
 * ICMP errors (destination unreachable, time exceeded, parameter problem, packet too big,
 * redirect, source quench) carry the start of the packet that caused them; it is parsed into
 * `inner` (relaxed: may be truncated, needs only 8 transport bytes) so the filter can relate the
 * error to a tracked flow.
 */
import { readWord } from './cidr.js';

/** Transport classes as the filter matches them. ICMP means ICMPv4 in IPv4, ICMPv6 in IPv6. */
export const L4_OTHER = 0;
export const L4_TCP = 1;
export const L4_UDP = 2;
export const L4_ICMP = 3;

export const FRAG_NONE = 0;
export const FRAG_FIRST = 1;
export const FRAG_LATER = 2;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

const MAX_EXT_HEADERS = 8;

/** The fields the filter reads, overwritten by each parse. Addresses are int32 words (see Prefix). */
export class PacketInfo {
  version: 4 | 6 = 4;
  /** Transport protocol number (IPv4 protocol / last IPv6 next header). */
  proto = 0;
  l4 = L4_OTHER;
  /** Absolute offsets of the source and destination addresses in the buffer. */
  srcOffset = 0;
  dstOffset = 0;
  s0 = 0;
  s1 = 0;
  s2 = 0;
  s3 = 0;
  d0 = 0;
  d1 = 0;
  d2 = 0;
  d3 = 0;
  hasPorts = false;
  srcPort = 0;
  dstPort = 0;
  tcpFlags = 0;
  icmpType = 0;
  icmpCode = 0;
  /** ICMP echo request or reply (then `icmpId` is its identifier). */
  isEchoRequest = false;
  isEchoReply = false;
  icmpId = 0;
  /** ICMP error carrying a parsable inner packet in `inner`. */
  hasInner = false;
  frag = FRAG_NONE;
  /** Fragment identification (IPv4 16-bit, IPv6 32-bit as int32) and the protocol it names. */
  fragId = 0;
  fragProto = 0;
  readonly inner: PacketInfo | null;

  constructor(withInner = true) {
    this.inner = withInner ? new PacketInfo(false) : null;
  }
}

function u16(buf: Uint8Array, o: number): number {
  return (buf[o]! << 8) | buf[o + 1]!;
}

/**
 * Parse buf[off, off+len) into p. Returns false (p then holds garbage) for anything malformed,
 * including offsets outside the buffer.
 */
export function parsePacket(buf: Uint8Array, off: number, len: number, p: PacketInfo): boolean {
  if (!(off >= 0 && len > 0 && off + len <= buf.length) || (off | 0) !== off || (len | 0) !== len) return false;
  const v = buf[off]! >> 4;
  if (v === 4) return parse4(buf, off, len, p, false);
  if (v === 6) return parse6(buf, off, len, p, false);
  return false;
}

function resetL4(p: PacketInfo): void {
  p.hasPorts = false;
  p.srcPort = 0;
  p.dstPort = 0;
  p.tcpFlags = 0;
  p.icmpType = 0;
  p.icmpCode = 0;
  p.isEchoRequest = false;
  p.isEchoReply = false;
  p.icmpId = 0;
  p.hasInner = false;
  p.frag = FRAG_NONE;
  p.fragId = 0;
  p.fragProto = 0;
}

function parse4(buf: Uint8Array, off: number, len: number, p: PacketInfo, embedded: boolean): boolean {
  if (len < 20) return false;
  const ihl = (buf[off]! & 15) << 2;
  if (ihl < 20 || ihl > len) return false;
  const total = u16(buf, off + 2);
  if (total < ihl) return false;
  let end: number;
  if (embedded) end = off + (total < len ? total : len);
  else {
    if (total > len) return false;
    end = off + total;
  }
  resetL4(p);
  p.version = 4;
  p.srcOffset = off + 12;
  p.dstOffset = off + 16;
  p.s0 = readWord(buf, off + 12);
  p.d0 = readWord(buf, off + 16);
  p.s1 = p.s2 = p.s3 = 0;
  p.d1 = p.d2 = p.d3 = 0;
  const proto = buf[off + 9]!;
  p.proto = proto;
  p.l4 = proto === IPPROTO_TCP ? L4_TCP : proto === IPPROTO_UDP ? L4_UDP : proto === IPPROTO_ICMP ? L4_ICMP : L4_OTHER;
  const fw = u16(buf, off + 6);
  const fragOffset = fw & 0x1fff;
  const more = (fw & 0x2000) !== 0;
  if (fragOffset !== 0 || more) {
    p.fragId = u16(buf, off + 4);
    p.fragProto = proto;
    if (fragOffset !== 0) {
      if (fragOffset === 1 && proto === IPPROTO_TCP) return false;
      p.frag = FRAG_LATER;
      return !embedded; // an embedded non-first fragment cannot be related to a flow
    }
    p.frag = FRAG_FIRST;
  }
  return parseL4(buf, off + ihl, end, p, embedded);
}

function parse6(buf: Uint8Array, off: number, len: number, p: PacketInfo, embedded: boolean): boolean {
  if (len < 40) return false;
  const payload = u16(buf, off + 4);
  let end: number;
  if (embedded) end = off + (40 + payload < len ? 40 + payload : len);
  else {
    if (40 + payload > len) return false; // also rejects jumbograms (payload length 0 with data is fine: ignored)
    end = off + 40 + payload;
  }
  resetL4(p);
  p.version = 6;
  p.srcOffset = off + 8;
  p.dstOffset = off + 24;
  p.s0 = readWord(buf, off + 8);
  p.s1 = readWord(buf, off + 12);
  p.s2 = readWord(buf, off + 16);
  p.s3 = readWord(buf, off + 20);
  p.d0 = readWord(buf, off + 24);
  p.d1 = readWord(buf, off + 28);
  p.d2 = readWord(buf, off + 32);
  p.d3 = readWord(buf, off + 36);
  let nh = buf[off + 6]!;
  let pos = off + 40;
  let sawFragment = false;
  for (let i = 0; ; i++) {
    if (i > MAX_EXT_HEADERS) return false;
    if (nh === 0 || nh === 43 || nh === 60 || nh === 51) {
      if (nh === 0 && i !== 0) return false; // hop-by-hop only directly after the IPv6 header
      if (pos + 8 > end) return false;
      const hl = nh === 51 ? (buf[pos + 1]! + 2) << 2 : (buf[pos + 1]! + 1) << 3;
      if (pos + hl > end) return false;
      nh = buf[pos]!;
      pos += hl;
      continue;
    }
    if (nh === 44) {
      if (sawFragment || pos + 8 > end) return false;
      sawFragment = true;
      const fw = u16(buf, pos + 2);
      const fragOffset = fw >> 3;
      const more = (fw & 1) !== 0;
      const next = buf[pos]!;
      if (fragOffset !== 0 || more) {
        p.fragId = readWord(buf, pos + 4);
        p.fragProto = next;
        if (fragOffset !== 0) {
          p.proto = next;
          p.l4 = L4_OTHER;
          p.frag = FRAG_LATER;
          return !embedded;
        }
        p.frag = FRAG_FIRST;
      }
      // An atomic fragment (offset 0, no more fragments: RFC 6946) is a whole packet.
      nh = next;
      pos += 8;
      continue;
    }
    break;
  }
  p.proto = nh;
  p.l4 = nh === IPPROTO_TCP ? L4_TCP : nh === IPPROTO_UDP ? L4_UDP : nh === IPPROTO_ICMPV6 ? L4_ICMP : L4_OTHER;
  return parseL4(buf, pos, end, p, embedded);
}

function isIcmpError(version: 4 | 6, type: number): boolean {
  if (version === 4) return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
  return type >= 1 && type <= 4;
}

function parseL4(buf: Uint8Array, o: number, end: number, p: PacketInfo, embedded: boolean): boolean {
  const avail = end - o;
  switch (p.l4) {
    case L4_TCP: {
      if (embedded) {
        if (avail < 8) return false;
      } else {
        if (avail < 20) return false;
        const doff = (buf[o + 12]! >> 4) << 2;
        if (doff < 20 || doff > avail) return false;
        p.tcpFlags = buf[o + 13]!;
      }
      p.hasPorts = true;
      p.srcPort = u16(buf, o);
      p.dstPort = u16(buf, o + 2);
      return true;
    }
    case L4_UDP: {
      if (avail < 8) return false;
      if (!embedded && p.frag === FRAG_NONE) {
        const ulen = u16(buf, o + 4);
        if (ulen < 8 || ulen > avail) return false;
      }
      p.hasPorts = true;
      p.srcPort = u16(buf, o);
      p.dstPort = u16(buf, o + 2);
      return true;
    }
    case L4_ICMP: {
      if (avail < 8) return false;
      const type = buf[o]!;
      p.icmpType = type;
      p.icmpCode = buf[o + 1]!;
      const v4 = p.version === 4;
      if (type === (v4 ? 8 : 128)) {
        p.isEchoRequest = true;
        p.icmpId = u16(buf, o + 4);
      } else if (type === (v4 ? 0 : 129)) {
        p.isEchoReply = true;
        p.icmpId = u16(buf, o + 4);
      } else if (!embedded && p.frag === FRAG_NONE && isIcmpError(p.version, type)) {
        const inner = p.inner;
        const io = o + 8;
        const ilen = end - io;
        if (inner !== null && ilen > 0) {
          const iv = buf[io]! >> 4;
          // The inner packet must be of the same family as the error that carries it.
          p.hasInner = v4 ? iv === 4 && parse4(buf, io, ilen, inner, true) : iv === 6 && parse6(buf, io, ilen, inner, true);
        }
      }
      return true;
    }
    default:
      return true;
  }
}

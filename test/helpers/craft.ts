/**
 * Building real IPv4/IPv6 packets (TCP, UDP, ICMP echo and errors, fragments) with correct
 * lengths and checksums — for tests, benchmarks and diagnostics. Not for the packet path: it
 * allocates, and it throws MeshdError('E_ENGINE') on bad arguments.
 */
import { MeshdError } from '../../src/errors.js';
import { parseIPv4, parseIPv6 } from '../../src/util/ip.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../../src/engine/filter/packet.js';

export interface CraftOptions {
  /** IPv4 or IPv6 addresses (both of the same family). */
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp' | number;
  srcPort?: number;
  dstPort?: number;
  /** TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16). Default ACK. */
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  /** Bytes 4–7 of the ICMP header: identifier and sequence for echo. */
  icmpId?: number;
  icmpSeq?: number;
  payload?: Uint8Array;
  ttl?: number;
  /** IPv4 identification. */
  ipId?: number;
}

function addrBytes(s: string): Buffer {
  const v6 = s.includes(':');
  const b = v6 ? parseIPv6(s) : parseIPv4(s);
  if (b === null) throw new MeshdError('E_ENGINE', `craft: bad IPv${v6 ? 6 : 4} address ${s}`);
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

/** Internet checksum (RFC 1071) over the given byte ranges, concatenated. */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd = false;
  let carry = 0;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      if (odd) sum += carry | part[i]!;
      else carry = part[i]! << 8;
      odd = !odd;
    }
  }
  if (odd) sum += carry;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function protoNumber(p: CraftOptions['proto'], v6: boolean): number {
  if (typeof p === 'number') return p;
  return p === 'tcp' ? IPPROTO_TCP : p === 'udp' ? IPPROTO_UDP : v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
}

/** The transport header + payload for `o` (checksum computed for the given addresses). */
function transport(o: CraftOptions, src: Buffer, dst: Buffer, proto: number): Buffer {
  const payload = Buffer.from(o.payload ?? new Uint8Array(0));
  const v6 = src.length === 16;
  let l4: Buffer;
  if (proto === IPPROTO_TCP) {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(o.srcPort ?? 0, 0);
    l4.writeUInt16BE(o.dstPort ?? 0, 2);
    l4.writeUInt32BE(0x01020304, 4);
    l4.writeUInt32BE((o.tcpFlags ?? 0x10) & 0x10 ? 0x0a0b0c0d : 0, 8);
    l4[12] = 5 << 4;
    l4[13] = o.tcpFlags ?? 0x10;
    l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
  } else if (proto === IPPROTO_UDP) {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(o.srcPort ?? 0, 0);
    l4.writeUInt16BE(o.dstPort ?? 0, 2);
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    l4 = Buffer.alloc(8 + payload.length);
    l4[0] = o.icmpType ?? (v6 ? 128 : 8);
    l4[1] = o.icmpCode ?? 0;
    l4.writeUInt16BE(o.icmpId ?? 0, 4);
    l4.writeUInt16BE(o.icmpSeq ?? 0, 6);
    payload.copy(l4, 8);
  } else {
    return payload;
  }
  const csumAt = proto === IPPROTO_TCP ? 16 : proto === IPPROTO_UDP ? 6 : 2;
  let sum: number;
  if (proto === IPPROTO_ICMP) sum = internetChecksum(l4);
  else {
    const pseudo = Buffer.alloc(v6 ? 40 : 12);
    if (v6) {
      src.copy(pseudo, 0);
      dst.copy(pseudo, 16);
      pseudo.writeUInt32BE(l4.length, 32);
      pseudo[39] = proto;
    } else {
      src.copy(pseudo, 0);
      dst.copy(pseudo, 4);
      pseudo[9] = proto;
      pseudo.writeUInt16BE(l4.length, 10);
    }
    sum = internetChecksum(pseudo, l4);
    if (proto === IPPROTO_UDP && sum === 0) sum = 0xffff;
  }
  l4.writeUInt16BE(sum, csumAt);
  return l4;
}

function ipHeader(src: Buffer, dst: Buffer, proto: number, payloadLength: number, ttl: number, ipId: number): Buffer {
  if (src.length === 4) {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h.writeUInt16BE(20 + payloadLength, 2);
    h.writeUInt16BE(ipId & 0xffff, 4);
    h[8] = ttl;
    h[9] = proto;
    src.copy(h, 12);
    dst.copy(h, 16);
    h.writeUInt16BE(internetChecksum(h), 10);
    return h;
  }
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payloadLength, 4);
  h[6] = proto;
  h[7] = ttl;
  src.copy(h, 8);
  dst.copy(h, 24);
  return h;
}

/** A complete IP packet. */
export function craftPacket(o: CraftOptions): Buffer {
  const src = addrBytes(o.src);
  const dst = addrBytes(o.dst);
  if (src.length !== dst.length) throw new MeshdError('E_ENGINE', 'craft: src and dst of different families');
  const proto = protoNumber(o.proto, src.length === 16);
  const l4 = transport(o, src, dst, proto);
  return Buffer.concat([ipHeader(src, dst, proto, l4.length, o.ttl ?? 64, o.ipId ?? 1), l4]);
}

export function craftTcp(src: string, dst: string, srcPort: number, dstPort: number, tcpFlags: number, payload?: Uint8Array): Buffer {
  return craftPacket({ src, dst, proto: 'tcp', srcPort, dstPort, tcpFlags, ...(payload ? { payload } : {}) });
}

export function craftUdp(src: string, dst: string, srcPort: number, dstPort: number, payload?: Uint8Array): Buffer {
  return craftPacket({ src, dst, proto: 'udp', srcPort, dstPort, ...(payload ? { payload } : {}) });
}

/** ICMP / ICMPv6 echo request or reply. */
export function craftEcho(src: string, dst: string, kind: 'request' | 'reply', id: number, seq = 1): Buffer {
  const v6 = src.includes(':');
  const icmpType = kind === 'request' ? (v6 ? 128 : 8) : v6 ? 129 : 0;
  return craftPacket({ src, dst, proto: 'icmp', icmpType, icmpId: id, icmpSeq: seq, payload: Buffer.from('meshd-ping') });
}

/**
 * An ICMP error from `src` to `dst` quoting `original` (as much as fits in 576/1280 bytes):
 * 'unreachable' (v4 3/3, v6 1/4), 'too-big' (v4 3/4 with next-hop MTU, v6 2 with MTU 1280),
 * 'time-exceeded' (v4 11, v6 3).
 */
export function craftIcmpError(src: string, dst: string, kind: 'unreachable' | 'too-big' | 'time-exceeded', original: Uint8Array): Buffer {
  const v6 = src.includes(':');
  const room = v6 ? 1280 - 48 : 576 - 28;
  const quoted = Buffer.from(original.subarray(0, Math.min(original.length, room)));
  let icmpType: number;
  let icmpCode = 0;
  let word = 0;
  if (kind === 'unreachable') {
    icmpType = v6 ? 1 : 3;
    icmpCode = v6 ? 4 : 3;
  } else if (kind === 'too-big') {
    icmpType = v6 ? 2 : 3;
    icmpCode = v6 ? 0 : 4;
    word = v6 ? 1280 : 1200;
  } else {
    icmpType = v6 ? 3 : 11;
  }
  return craftPacket({
    src,
    dst,
    proto: 'icmp',
    icmpType,
    icmpCode,
    icmpId: v6 ? word >>> 16 : 0,
    icmpSeq: word & 0xffff,
    payload: quoted,
  });
}

/**
 * Split a complete packet (IPv4, or IPv6 without extension headers) into fragments whose data
 * parts are `chunk` bytes (a multiple of 8) except the last. IPv6 gets a fragment header.
 */
export function fragmentPacket(packet: Uint8Array, chunk: number, id = 0x1234): Buffer[] {
  if (chunk <= 0 || chunk % 8 !== 0) throw new MeshdError('E_ENGINE', 'craft: fragment size must be a positive multiple of 8');
  const pkt = Buffer.from(packet);
  const v6 = pkt[0]! >> 4 === 6;
  const hl = v6 ? 40 : (pkt[0]! & 15) * 4;
  const data = pkt.subarray(hl);
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunk) {
    const part = data.subarray(at, Math.min(data.length, at + chunk));
    const more = at + chunk < data.length;
    if (v6) {
      const h = Buffer.from(pkt.subarray(0, 40));
      const fh = Buffer.alloc(8);
      fh[0] = pkt[6]!;
      fh.writeUInt16BE(((at / 8) << 3) | (more ? 1 : 0), 2);
      fh.writeUInt32BE(id >>> 0, 4);
      h[6] = 44;
      h.writeUInt16BE(8 + part.length, 4);
      out.push(Buffer.concat([h, fh, part]));
    } else {
      const h = Buffer.from(pkt.subarray(0, hl));
      h.writeUInt16BE(hl + part.length, 2);
      h.writeUInt16BE(id & 0xffff, 4);
      h.writeUInt16BE((more ? 0x2000 : 0) | (at / 8), 6);
      h.writeUInt16BE(0, 10);
      h.writeUInt16BE(internetChecksum(h), 10);
      out.push(Buffer.concat([h, part]));
    }
  }
  return out;
}

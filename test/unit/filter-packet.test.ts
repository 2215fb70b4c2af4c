import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FRAG_FIRST,
  FRAG_LATER,
  FRAG_NONE,
  L4_ICMP,
  L4_OTHER,
  L4_TCP,
  L4_UDP,
  PacketInfo,
  parsePacket,
  TCP_ACK,
  TCP_SYN,
} from '../../src/engine/filter/packet.js';
import {
  craftEcho,
  craftIcmpError,
  craftPacket,
  craftTcp,
  craftUdp,
  fragmentPacket,
  internetChecksum,
} from '../helpers/craft.js';

function parse(b: Uint8Array, off = 0, len = b.length): PacketInfo | null {
  const p = new PacketInfo();
  return parsePacket(b, off, len, p) ? p : null;
}

const word = (ip: string): number => {
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) | 0;
};

test('crafted IPv4 packets carry valid header and transport checksums', () => {
  const pkt = craftTcp('10.200.0.11', '10.200.0.2', 40000, 22, TCP_SYN, Buffer.from('hi'));
  assert.equal(internetChecksum(pkt.subarray(0, 20)), 0, 'IPv4 header checksum verifies to 0');
  const pseudo = Buffer.alloc(12);
  pkt.copy(pseudo, 0, 12, 20);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(pkt.length - 20, 10);
  assert.equal(internetChecksum(pseudo, pkt.subarray(20)), 0, 'TCP checksum verifies to 0');
});

test('IPv4 TCP SYN: addresses as numbers, ports, flags', () => {
  const p = parse(craftTcp('10.200.0.11', '10.200.0.2', 40000, 22, TCP_SYN))!;
  assert.ok(p);
  assert.equal(p.version, 4);
  assert.equal(p.l4, L4_TCP);
  assert.equal(p.proto, 6);
  assert.equal(p.s0, word('10.200.0.11'));
  assert.equal(p.d0, word('10.200.0.2'));
  assert.deepEqual([p.s1, p.s2, p.s3, p.d1, p.d2, p.d3], [0, 0, 0, 0, 0, 0]);
  assert.equal(p.srcOffset, 12);
  assert.equal(p.dstOffset, 16);
  assert.equal(p.hasPorts, true);
  assert.equal(p.srcPort, 40000);
  assert.equal(p.dstPort, 22);
  assert.equal(p.tcpFlags, TCP_SYN);
  assert.equal(p.frag, FRAG_NONE);
});

test('a packet in the middle of a larger buffer parses at its offset; bytes after total length are ignored', () => {
  const pkt = craftUdp('10.1.2.3', '10.200.0.2', 5353, 53, Buffer.from('query'));
  const big = Buffer.alloc(pkt.length + 100, 0xee);
  pkt.copy(big, 37);
  const p = parse(big, 37, pkt.length + 20)!;
  assert.ok(p);
  assert.equal(p.l4, L4_UDP);
  assert.equal(p.srcPort, 5353);
  assert.equal(p.dstPort, 53);
  assert.equal(p.srcOffset, 37 + 12);
});

test('IPv6 UDP and TCP: addresses as four words, ports', () => {
  const p = parse(craftUdp('fd0d:e100:d3c5::11', 'fd0d:e100:d3c5::2', 1234, 5678))!;
  assert.ok(p);
  assert.equal(p.version, 6);
  assert.equal(p.l4, L4_UDP);
  assert.equal(p.s0, 0xfd0de100 | 0);
  assert.equal(p.s1, 0xd3c50000 | 0);
  assert.equal(p.s3, 0x11);
  assert.equal(p.d3, 2);
  assert.equal(p.srcOffset, 8);
  assert.equal(p.dstOffset, 24);
  assert.deepEqual([p.srcPort, p.dstPort], [1234, 5678]);
  const t = parse(craftTcp('fd00::1', 'fd00::2', 1, 2, TCP_SYN | TCP_ACK))!;
  assert.equal(t.tcpFlags, TCP_SYN | TCP_ACK);
});

test('ICMP and ICMPv6 echo: type and identifier', () => {
  for (const [src, dst] of [
    ['10.200.0.2', '10.200.0.11'],
    ['fd0d::2', 'fd0d::11'],
  ] as const) {
    const rq = parse(craftEcho(src, dst, 'request', 0xbeef))!;
    assert.equal(rq.l4, L4_ICMP);
    assert.equal(rq.isEchoRequest, true);
    assert.equal(rq.isEchoReply, false);
    assert.equal(rq.icmpId, 0xbeef);
    assert.equal(rq.hasPorts, false);
    const rp = parse(craftEcho(dst, src, 'reply', 7))!;
    assert.equal(rp.isEchoReply, true);
    assert.equal(rp.icmpId, 7);
  }
});

test('ICMP errors expose the quoted packet as `inner`', () => {
  const sent = craftTcp('10.200.0.2', '10.200.0.11', 40001, 5000, TCP_SYN);
  const err = parse(craftIcmpError('10.200.0.11', '10.200.0.2', 'unreachable', sent))!;
  assert.equal(err.hasInner, true);
  const q = err.inner!;
  assert.equal(q.l4, L4_TCP);
  assert.equal(q.s0, word('10.200.0.2'));
  assert.equal(q.srcPort, 40001);
  assert.equal(q.dstPort, 5000);

  // Truncated quote (only 8 transport bytes, as RFC 792 guarantees) still yields the ports.
  const short = craftIcmpError('10.200.0.11', '10.200.0.2', 'time-exceeded', sent.subarray(0, 28));
  const s = parse(short)!;
  assert.equal(s.hasInner, true);
  assert.equal(s.inner!.dstPort, 5000);

  const sent6 = craftUdp('fd0d::2', 'fd0d::11', 999, 53, Buffer.alloc(1400));
  const e6 = parse(craftIcmpError('fd0d::11', 'fd0d::2', 'too-big', sent6))!;
  assert.equal(e6.icmpType, 2);
  assert.equal(e6.hasInner, true);
  assert.equal(e6.inner!.l4, L4_UDP);
  assert.equal(e6.inner!.dstPort, 53);

  // A quote of the wrong family or garbage is not an inner packet, but the error itself is fine.
  const odd = parse(craftIcmpError('10.200.0.11', '10.200.0.2', 'unreachable', Buffer.from([0x60, 1, 2])))!;
  assert.ok(odd);
  assert.equal(odd.hasInner, false);
});

test('IPv4 fragments: first has ports, later ones are FRAG_LATER with id and protocol', () => {
  const whole = craftUdp('10.200.0.11', '10.200.0.2', 4000, 53, Buffer.alloc(100, 1));
  const frags = fragmentPacket(whole, 48, 0x4242);
  assert.equal(frags.length, 3);
  const f0 = parse(frags[0]!)!;
  assert.equal(f0.frag, FRAG_FIRST);
  assert.equal(f0.fragId, 0x4242);
  assert.equal(f0.hasPorts, true);
  assert.equal(f0.dstPort, 53);
  for (const f of frags.slice(1)) {
    const p = parse(f)!;
    assert.equal(p.frag, FRAG_LATER);
    assert.equal(p.fragId, 0x4242);
    assert.equal(p.fragProto, 17);
    assert.equal(p.hasPorts, false);
  }
});

test('IPv6 fragments via the fragment header', () => {
  const whole = craftTcp('fd0d::11', 'fd0d::2', 4000, 22, TCP_ACK, Buffer.alloc(200, 2));
  const frags = fragmentPacket(whole, 96, 0xdeadbeef);
  assert.equal(frags.length, 3);
  const f0 = parse(frags[0]!)!;
  assert.equal(f0.frag, FRAG_FIRST);
  assert.equal(f0.l4, L4_TCP);
  assert.equal(f0.dstPort, 22);
  assert.equal(f0.fragId, 0xdeadbeef | 0);
  const f2 = parse(frags[2]!)!;
  assert.equal(f2.frag, FRAG_LATER);
  assert.equal(f2.fragProto, 6);
  assert.equal(f2.fragId, 0xdeadbeef | 0);
});

test('IPv6 extension headers are skipped to the transport header', () => {
  const base = craftUdp('fd0d::11', 'fd0d::2', 7, 9);
  // Insert hop-by-hop (8 bytes) and destination options (16 bytes) between header and UDP.
  const hbh = Buffer.from([60, 0, 1, 4, 0, 0, 0, 0]);
  const dst = Buffer.from([17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const h = Buffer.from(base.subarray(0, 40));
  h[6] = 0;
  h.writeUInt16BE(base.length - 40 + 24, 4);
  const pkt = Buffer.concat([h, hbh, dst, base.subarray(40)]);
  const p = parse(pkt)!;
  assert.ok(p);
  assert.equal(p.l4, L4_UDP);
  assert.equal(p.dstPort, 9);
  // Hop-by-hop anywhere but first is malformed.
  const bad = Buffer.from(pkt);
  bad[6] = 60;
  bad[40] = 0;
  bad[48] = 17;
  assert.equal(parse(bad), null);
  // ESP and unknown headers end the walk: protocol "other".
  const esp = Buffer.from(base);
  esp[6] = 50;
  const e = parse(esp)!;
  assert.equal(e.l4, L4_OTHER);
  assert.equal(e.proto, 50);
});

test('malformed and truncated packets are refused', () => {
  const tcp = craftTcp('10.0.0.1', '10.0.0.2', 1, 2, TCP_SYN);
  const cases: [string, Uint8Array, number?, number?][] = [
    ['empty', Buffer.alloc(0)],
    ['version 5', Buffer.from([0x50, ...Buffer.alloc(39)])],
    ['short IPv4 header', tcp.subarray(0, 19)],
    ['truncated TCP header', tcp.subarray(0, 30)],
    ['truncated IPv6 header', craftUdp('fd00::1', 'fd00::2', 1, 2).subarray(0, 39)],
    ['IPv6 payload beyond the buffer', craftUdp('fd00::1', 'fd00::2', 1, 2).subarray(0, 47)],
    ['offset past the end', tcp, 10, tcp.length],
    ['negative offset', tcp, -1, 10],
    ['fractional length', tcp, 0, 40.5],
  ];
  const ihl = Buffer.from(tcp);
  ihl[0] = 0x44;
  cases.push(['IHL < 5', ihl]);
  const ihlBig = Buffer.from(tcp);
  ihlBig[0] = 0x4f;
  cases.push(['IHL beyond packet', ihlBig.subarray(0, 50)]);
  const total = Buffer.from(tcp);
  total.writeUInt16BE(tcp.length + 1, 2);
  cases.push(['total length > buffer', total]);
  const doff = Buffer.from(tcp);
  doff[32] = 0xf0;
  cases.push(['TCP data offset past the packet', doff]);
  const doff4 = Buffer.from(tcp);
  doff4[32] = 0x40;
  cases.push(['TCP data offset < 5', doff4]);
  const udp = craftUdp('10.0.0.1', '10.0.0.2', 1, 2, Buffer.alloc(4));
  const ulen = Buffer.from(udp);
  ulen.writeUInt16BE(100, 24);
  cases.push(['UDP length past the packet', ulen]);
  const tinyFrag = fragmentPacket(craftTcp('10.0.0.1', '10.0.0.2', 1, 2, TCP_ACK, Buffer.alloc(64)), 8)[0]!;
  cases.push(['first fragment too short for the TCP header (RFC 1858)', tinyFrag]);
  const fo1 = fragmentPacket(craftTcp('10.0.0.1', '10.0.0.2', 1, 2, TCP_ACK, Buffer.alloc(64)), 8)[1]!;
  cases.push(['TCP fragment at offset 8 (RFC 1858)', fo1]);
  for (const [name, b, off, len] of cases) {
    assert.equal(parse(b, off ?? 0, len ?? b.length), null, name);
  }
});

test('property: parsePacket never throws on random bytes, offsets and lengths', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: -5, max: 210 }), fc.integer({ min: -5, max: 210 }), (bytes, off, len) => {
      const p = new PacketInfo();
      const ok = parsePacket(bytes, off, len, p);
      assert.equal(typeof ok, 'boolean');
      if (ok) {
        assert.ok(off >= 0 && off + len <= bytes.length);
        assert.ok(p.version === 4 || p.version === 6);
        assert.ok(p.srcOffset + (p.version === 4 ? 4 : 16) <= off + len);
      }
    }),
    { numRuns: 3000 },
  );
});

test('property: random corruption of valid packets never throws', () => {
  const seeds = [
    craftTcp('10.0.0.1', '10.0.0.2', 1, 2, TCP_SYN, Buffer.alloc(20)),
    craftUdp('fd00::1', 'fd00::2', 1, 2, Buffer.alloc(30)),
    craftIcmpError('10.0.0.9', '10.0.0.1', 'unreachable', craftUdp('10.0.0.1', '10.0.0.2', 1, 2)),
    craftIcmpError('fd00::9', 'fd00::1', 'too-big', craftTcp('fd00::1', 'fd00::2', 1, 2, TCP_ACK)),
    ...fragmentPacket(craftUdp('fd00::1', 'fd00::2', 1, 2, Buffer.alloc(64)), 32),
    craftPacket({ src: '10.0.0.1', dst: '10.0.0.2', proto: 47, payload: Buffer.alloc(10) }),
  ];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
      (i, edits, cut) => {
        const b = Buffer.from(seeds[i]!);
        for (const [at, v] of edits) b[at % b.length] = v;
        const p = new PacketInfo();
        const ok = parsePacket(b, 0, cut % (b.length + 1), p);
        assert.equal(typeof ok, 'boolean');
      },
    ),
    { numRuns: 3000 },
  );
});

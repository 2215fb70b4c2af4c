/**
 * The TUN offload's cutting and joining (native/src/vnet_*.c), on plain buffers: a super-segment
 * with a virtio header, built here the way the kernel hands it over (CHECKSUM_PARTIAL: the TCP
 * or UDP checksum field holds the pseudo-header sum), is cut into packets whose every checksum,
 * length, IP ID and TCP sequence number is checked by the independent code below; the packets
 * joined again give one frame that cuts back into the same packets. Segments that must not be
 * joined (other flow, gap, bad checksum, flags) are not, and bad frames are refused, not crashed on.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { loadNative } from '../../src/engine/native/load.js';
import type { NativeAddon } from '../../src/engine/native/addon.js';
import { PacketBatch } from '../../src/engine/packet-batch.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const addon = loadNative();
const VNET = 10;
const SLOT = 2048;
const HEAD = 16;
const MAXLEN = SLOT - HEAD - 32;

function native(t: TestContext): Required<Pick<NativeAddon, 'vnetSplit' | 'vnetCoalesce'>> | null {
  if (!requirePrereqs(t, ['native'])) return null;
  assert.ok(addon?.vnetSplit && addon.vnetCoalesce, 'the addon has the offload functions (rebuild it)');
  return { vnetSplit: addon.vnetSplit.bind(addon), vnetCoalesce: addon.vnetCoalesce.bind(addon) };
}

// ---------------------------------------------------------------- independent checksum code

function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  for (let i = from; i < to; i += 2) acc += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

function pseudo(pkt: Uint8Array, v6: boolean, proto: number, len: number): number {
  const acc = v6 ? sum16(pkt, 8, 40) : sum16(pkt, 12, 20);
  return acc + proto + (len >>> 16) + (len & 0xffff);
}

function ipHeaderLen(pkt: Uint8Array): number {
  return pkt[0]! >> 4 === 6 ? 40 : (pkt[0]! & 0x0f) * 4;
}

function ipv4HeaderOk(pkt: Uint8Array): boolean {
  return fold(sum16(pkt, 0, 20)) === 0xffff;
}

function transportOk(pkt: Uint8Array, proto: number): boolean {
  const v6 = pkt[0]! >> 4 === 6;
  const iph = ipHeaderLen(pkt);
  return fold(sum16(pkt, iph, pkt.length, pseudo(pkt, v6, proto, pkt.length - iph))) === 0xffff;
}

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

// ---------------------------------------------------------------- building packets

interface Shape {
  v6: boolean;
  udp: boolean;
  mss: number;
  payload: Uint8Array;
  /** TCP options (a multiple of 4 bytes). */
  options: Uint8Array;
  psh: boolean;
  seq: number;
  id: number;
}

/** The IP + transport headers and payload of one packet, checksums left for the caller. */
function ipPacket(s: Shape, payload: Uint8Array, seq: number, flags: number): Uint8Array {
  const iph = s.v6 ? 40 : 20;
  const th = s.udp ? 8 : 20 + s.options.length;
  const p = new Uint8Array(iph + th + payload.length);
  if (s.v6) {
    p[0] = 0x60;
    p[4] = (th + payload.length) >> 8;
    p[5] = (th + payload.length) & 0xff;
    p[6] = s.udp ? 17 : 6;
    p[7] = 64;
    p.set([0xfd, 0x7a, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
    p.set([0xfd, 0x7a, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 24);
  } else {
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[4] = s.id >> 8;
    p[5] = s.id & 0xff;
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = s.udp ? 17 : 6;
    p.set([10, 200, 0, 1], 12);
    p.set([10, 200, 0, 2], 16);
  }
  p[iph] = 0xa1;
  p[iph + 1] = 0x2c; // port 41260
  p[iph + 2] = 0x14;
  p[iph + 3] = 0x51; // port 5201
  if (s.udp) {
    p[iph + 4] = (8 + payload.length) >> 8;
    p[iph + 5] = (8 + payload.length) & 0xff;
  } else {
    p[iph + 4] = seq >>> 24;
    p[iph + 5] = (seq >>> 16) & 0xff;
    p[iph + 6] = (seq >>> 8) & 0xff;
    p[iph + 7] = seq & 0xff;
    p.set([0x12, 0x34, 0x56, 0x78], iph + 8); // ack
    p[iph + 12] = (th / 4) << 4;
    p[iph + 13] = flags;
    p[iph + 14] = 0x01;
    p[iph + 15] = 0xf5; // window
    p.set(s.options, iph + 20);
  }
  p.set(payload, iph + th);
  return p;
}

/** The frame a TSO/USO TUN read returns: virtio header, then the whole super-segment (CHECKSUM_PARTIAL). */
function superFrame(s: Shape): Uint8Array {
  const pkt = ipPacket(s, s.payload, s.seq, 0x10 | (s.psh ? 0x08 : 0));
  const iph = s.v6 ? 40 : 20;
  const th = s.udp ? 8 : 20 + s.options.length;
  if (!s.v6) {
    const c = ~fold(sum16(pkt, 0, 20)) & 0xffff;
    pkt[10] = c >> 8;
    pkt[11] = c & 0xff;
  }
  const csumOff = s.udp ? 6 : 16;
  const ps = fold(pseudo(pkt, s.v6, s.udp ? 17 : 6, pkt.length - iph));
  pkt[iph + csumOff] = ps >> 8;
  pkt[iph + csumOff + 1] = ps & 0xff;
  const f = new Uint8Array(VNET + pkt.length);
  const gsoType = s.udp ? 5 : s.v6 ? 4 : 1;
  const hdr = [1, gsoType, iph + th, s.mss, iph, csumOff];
  f[0] = hdr[0]!;
  f[1] = hdr[1]!;
  for (let k = 2; k < 6; k++) {
    f[k * 2 - 2] = hdr[k]! & 0xff;
    f[k * 2 - 1] = hdr[k]! >> 8;
  }
  f.set(pkt, VNET);
  return f;
}

/** Complete, valid segments as a sender would have sent them (for the joining side). */
function segments(s: Shape): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < s.payload.length; off += s.mss, i++) {
    const chunk = s.payload.subarray(off, Math.min(off + s.mss, s.payload.length));
    const last = off + s.mss >= s.payload.length;
    const p = ipPacket({ ...s, id: (s.id + i) & 0xffff }, chunk, (s.seq + off) >>> 0, 0x10 | (s.psh && last ? 0x08 : 0));
    const iph = s.v6 ? 40 : 20;
    if (!s.v6) {
      const c = ~fold(sum16(p, 0, 20)) & 0xffff;
      p[10] = c >> 8;
      p[11] = c & 0xff;
    }
    const csumOff = s.udp ? 6 : 16;
    const c = ~fold(sum16(p, iph, p.length, pseudo(p, s.v6, s.udp ? 17 : 6, p.length - iph))) & 0xffff;
    p[iph + csumOff] = c >> 8;
    p[iph + csumOff + 1] = c & 0xff;
    out.push(p);
  }
  return out;
}

function split(n: ReturnType<typeof native> & object, frame: Uint8Array, max = 64): Uint8Array[] {
  const b = new PacketBatch(max, SLOT);
  const count = n.vnetSplit(frame, b.buf, SLOT, HEAD, MAXLEN, b.offsets, b.lengths, max);
  return Array.from({ length: count }, (_, i) => new Uint8Array(b.packet(i)));
}

interface Frame {
  hdr: { flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number };
  frame: Uint8Array;
  pkt: Uint8Array;
}

function coalesce(n: ReturnType<typeof native> & object, pkts: Uint8Array[]): Frame[] {
  const b = new PacketBatch(Math.max(1, pkts.length), SLOT);
  for (const p of pkts) b.push(p, HEAD);
  const out = new Uint8Array(pkts.length * SLOT + 65536);
  const lens = new Uint32Array(pkts.length + 1);
  const frames = n.vnetCoalesce(b.buf, b.offsets, b.lengths, 0, pkts.length, out, lens);
  const res: Frame[] = [];
  let o = 0;
  for (let k = 0; k < frames; k++) {
    const f = out.slice(o, o + lens[k]!);
    o += lens[k]!;
    const le = (i: number): number => f[i]! | (f[i + 1]! << 8);
    res.push({
      hdr: { flags: f[0]!, gsoType: f[1]!, hdrLen: le(2), gsoSize: le(4), csumStart: le(6), csumOffset: le(8) },
      frame: f,
      pkt: f.subarray(VNET),
    });
  }
  return res;
}

const shapeArb = fc.record({
  v6: fc.boolean(),
  udp: fc.boolean(),
  mss: fc.integer({ min: 200, max: 1400 }),
  payloadLen: fc.integer({ min: 1, max: 60000 }),
  optWords: fc.integer({ min: 0, max: 3 }),
  psh: fc.boolean(),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  id: fc.integer({ min: 0, max: 0xffff }),
});

interface ShapeArgs {
  v6: boolean;
  udp: boolean;
  mss: number;
  payloadLen: number;
  optWords: number;
  psh: boolean;
  seq: number;
  id: number;
}

function shapeOf(a: ShapeArgs): Shape {
  const options = new Uint8Array(a.optWords * 4);
  if (a.optWords > 0) options.set([1, 1, 8, 10], 0); // NOP NOP timestamp…
  for (let i = 4; i < options.length; i++) options[i] = i;
  return { v6: a.v6, udp: a.udp, mss: a.mss, payload: randomBytes(a.payloadLen), options: a.udp ? new Uint8Array(0) : options, psh: a.psh, seq: a.seq, id: a.id };
}

describe('TUN offload: cutting super-segments', () => {
  test('every cut packet is a valid packet, and together they carry the payload (property)', (t) => {
    const n = native(t);
    if (!n) return;
    fc.assert(
      fc.property(shapeArb, (a) => {
        const s = shapeOf(a);
        const pkts = split(n, superFrame(s), 512);
        const want = Math.ceil(s.payload.length / s.mss);
        assert.equal(pkts.length, want, 'segment count');
        const iph = s.v6 ? 40 : 20;
        const th = s.udp ? 8 : 20 + s.options.length;
        const got: Uint8Array[] = [];
        pkts.forEach((p, i) => {
          const last = i === pkts.length - 1;
          assert.equal(p.length, iph + th + (last ? s.payload.length - i * s.mss : s.mss), `length of ${i}`);
          if (s.v6) assert.equal(u16(p, 4), p.length - 40);
          else {
            assert.equal(u16(p, 2), p.length);
            assert.equal(u16(p, 4), (s.id + i) & 0xffff, 'IP ID counts up');
            assert.ok(ipv4HeaderOk(p), `IPv4 header checksum of ${i}`);
          }
          assert.ok(transportOk(p, s.udp ? 17 : 6), `transport checksum of ${i}`);
          if (s.udp) assert.equal(u16(p, iph + 4), p.length - iph, 'UDP length');
          else {
            assert.equal(u32(p, iph + 4), (s.seq + i * s.mss) >>> 0, 'TCP sequence number');
            assert.equal(p[iph + 13], 0x10 | (s.psh && last ? 0x08 : 0), 'PSH only on the last');
            assert.deepEqual(p.subarray(iph + 20, iph + th), s.options);
          }
          got.push(p.subarray(iph + th));
        });
        assert.deepEqual(Buffer.concat(got), Buffer.from(s.payload));
      }),
      { numRuns: 150 },
    );
  });

  test('a frame without GSO but with a partial checksum is completed', (t) => {
    const n = native(t);
    if (!n) return;
    const s = shapeOf({ v6: false, udp: false, mss: 1400, payloadLen: 900, optWords: 3, psh: true, seq: 7, id: 1 });
    const f = superFrame(s);
    f[1] = 0; // GSO_NONE, NEEDS_CSUM still set
    const pkts = split(n, f);
    assert.equal(pkts.length, 1);
    assert.ok(transportOk(pkts[0]!, 6));
  });

  test('malformed frames are refused with a reason, never crash (fuzzed)', (t) => {
    const n = native(t);
    if (!n) return;
    const good = superFrame(shapeOf({ v6: false, udp: false, mss: 1000, payloadLen: 5000, optWords: 0, psh: false, seq: 1, id: 1 }));
    const refuse = (f: Uint8Array, code: string, max = 64): void => {
      assert.throws(() => split(n, f, max), (e: unknown) => (e as { code?: string }).code === code, code);
    };
    const badOffset = good.slice();
    badOffset[8] = 12; // csum_offset 12 is not TCP's
    refuse(badOffset, 'EINVAL');
    const ufo = good.slice();
    ufo[1] = 3; // UFO
    refuse(ufo, 'EPROTONOSUPPORT');
    refuse(good.slice(0, VNET + 30), 'EINVAL');
    refuse(good.slice(), 'ENOSPC', 2); // 5 packets, 2 slots
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 2999 }), (junk, at) => {
        const f = good.slice();
        f.set(junk.subarray(0, Math.max(0, f.length - at)), Math.min(at, f.length));
        try {
          const pkts = split(n, f.subarray(0, Math.min(f.length, 11 + junk.length)), 64);
          for (const p of pkts) assert.ok(p.length <= MAXLEN);
        } catch (e) {
          assert.ok(typeof (e as { code?: string }).code === 'string', String(e));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('TUN offload: joining segments', () => {
  test('consecutive segments of a flow join into one frame that cuts back into them (property)', (t) => {
    const n = native(t);
    if (!n) return;
    fc.assert(
      fc.property(shapeArb, (a) => {
        const s = shapeOf({ ...a, udp: false, payloadLen: Math.min(a.payloadLen, 40 * a.mss) });
        const segs = segments(s);
        const frames = coalesce(n, segs.map((p) => p.slice()));
        assert.equal(frames.length, 1, `${segs.length} segments, one frame`);
        const f = frames[0]!;
        const iph = s.v6 ? 40 : 20;
        if (segs.length === 1) {
          assert.equal(f.hdr.gsoType, 0);
          assert.deepEqual(f.pkt, segs[0]);
          return;
        }
        assert.deepEqual(f.hdr, { flags: 1, gsoType: s.v6 ? 4 : 1, hdrLen: iph + 20 + s.options.length, gsoSize: s.mss, csumStart: iph, csumOffset: 16 });
        if (!s.v6) assert.ok(ipv4HeaderOk(f.pkt));
        assert.equal(s.v6 ? u16(f.pkt, 4) + 40 : u16(f.pkt, 2), f.pkt.length);
        assert.equal(u16(f.pkt, iph + 16), fold(pseudo(f.pkt, s.v6, 6, f.pkt.length - iph)), 'TCP checksum field holds the pseudo-header sum');
        const again = split(n, f.frame.slice(), 64);
        assert.deepEqual(again.map((p) => Buffer.from(p)), segs.map((p) => Buffer.from(p)), 'cut again: the same packets');
      }),
      { numRuns: 150 },
    );
  });

  test('two interleaved flows make two frames; gaps, bad checksums, flags and short segments split runs', (t) => {
    const n = native(t);
    if (!n) return;
    const base = { v6: false, udp: false, mss: 1000, optWords: 0, psh: false, id: 5 };
    const a = segments(shapeOf({ ...base, payloadLen: 4000, seq: 100 }));
    const b = segments(shapeOf({ ...base, payloadLen: 4000, seq: 9000 })).map((p) => {
      p[20 + 2] = 0x14;
      p[20 + 3] = 0x52; // another destination port: another flow
      p[36] = 0;
      p[37] = 0;
      const c = ~fold(sum16(p, 20, p.length, pseudo(p, false, 6, p.length - 20))) & 0xffff;
      p[36] = c >> 8;
      p[37] = c & 0xff;
      return p;
    });
    const interleaved = [a[0]!, b[0]!, a[1]!, b[1]!, a[2]!, b[2]!, a[3]!, b[3]!];
    const frames = coalesce(n, interleaved.map((p) => p.slice()));
    assert.equal(frames.length, 2);
    assert.equal(frames[0]!.pkt.length, 20 + 20 + 4000);
    assert.equal(frames[1]!.pkt.length, 20 + 20 + 4000);

    // a gap (segment 2 missing): two runs
    assert.equal(coalesce(n, [a[0]!, a[1]!, a[3]!].map((p) => p.slice())).length, 2);
    // a bad checksum in the middle: that packet goes alone, untouched
    const bad = a.map((p) => p.slice());
    const victim = bad[2]!;
    victim[100] = victim[100]! ^ 0xff;
    const fr = coalesce(n, bad.map((p) => p.slice()));
    assert.ok(fr.length >= 2);
    assert.ok(fr.some((f) => f.hdr.gsoType === 0 && Buffer.from(f.pkt).equals(Buffer.from(bad[2]!))), 'the bad one, as it was');
    // SYN / FIN are never joined
    const fin = a.map((p) => p.slice());
    fin[1]![33] = 0x11;
    assert.equal(coalesce(n, fin).length, 3);
    // a shorter segment ends a run: 1000, 500, 1000 → two frames
    const short = segments(shapeOf({ ...base, payloadLen: 1500, seq: 1 }));
    const next = segments(shapeOf({ ...base, payloadLen: 1000, seq: 1501 }));
    assert.equal(coalesce(n, [...short, ...next]).length, 2);
    // UDP and non-IP packets pass through alone and unchanged
    const udp = segments(shapeOf({ ...base, udp: true, payloadLen: 3000, seq: 0 }));
    const out = coalesce(n, udp.map((p) => p.slice()));
    assert.equal(out.length, 3);
    out.forEach((f, i) => assert.deepEqual(f.pkt, udp[i]));
  });
});

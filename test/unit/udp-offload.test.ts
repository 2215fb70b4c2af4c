/**
 * UDP segmentation offload on the native socket, over loopback: runs of same-size datagrams to
 * one address leave as one UDP_SEGMENT message, and the receiving socket (UDP_GRO) gets them as
 * one buffer that the addon cuts back into slots — every datagram intact, in order, with its
 * source. MESHD_NO_OFFLOAD=1 turns both off.
 */
import { collect } from '../helpers/udp-collect.js';
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { loadNative } from '../../src/engine/native/load.js';
import { PacketBatch, writeAddr } from '../../src/engine/packet-batch.js';
import { openBatchUdpSocket, type BatchUdpOptions, type BatchUdpSocket } from '../../src/engine/udp/batch-udp-socket.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const addon = loadNative();

function opener(t: TestContext): ((o?: BatchUdpOptions) => Promise<BatchUdpSocket>) | null {
  if (!requirePrereqs(t, ['native'])) return null;
  return async (o = {}) => {
    // the offload under test whatever the environment (the suite also runs with MESHD_NO_OFFLOAD=1)
    const s = await openBatchUdpSocket({ address: '127.0.0.1', env: {}, ...o, implementation: 'native', addon });
    t.after(() => s.close());
    return s;
  };
}



function batchOf(payloads: Buffer[], to: (i: number) => number): PacketBatch {
  const batch = new PacketBatch(Math.max(1, payloads.length));
  payloads.forEach((p, i) => {
    batch.push(p);
    writeAddr(batch.addrs, i, '127.0.0.1', to(i));
  });
  return batch;
}

/** n datagrams of `size` bytes (the last `lastSize`), each starting with its index. */
function run(n: number, size: number, lastSize = size): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = randomBytes(i === n - 1 ? lastSize : size);
    b.writeUInt16BE(i, 0);
    return b;
  });
}

describe('UDP GSO/GRO (native)', () => {
  test('same-size datagrams to one address go out segmented and come back cut, in order', async (t) => {
    const open = opener(t);
    if (!open) return;
    const a = await open();
    const b = await open();
    assert.deepEqual(a.offload, { gso: true, gro: true }, 'this kernel has UDP_SEGMENT and UDP_GRO');
    const sent = run(64, 1300, 700);
    const arriving = collect(b, 64);
    assert.equal(a.sendBatch(batchOf(sent, () => b.port)), 64);
    assert.equal(a.stats.txPackets, 64);
    assert.ok(a.stats.txSegmented >= 1, `segmented sends: ${JSON.stringify(a.stats)}`);
    assert.ok(a.stats.txMessages < 64 / 10, `64 datagrams in ${a.stats.txMessages} messages`);
    const got = await arriving;
    assert.deepEqual(
      got.map((g) => g.data),
      sent,
    );
    for (const g of got) assert.equal(g.port, a.port);
    assert.ok(b.stats.rxCoalesced >= 1, `coalesced receives: ${JSON.stringify(b.stats)}`);
    assert.equal(b.stats.rxPackets, 64);
  });

  test('a batch smaller than a coalesced buffer gets the rest on the next rounds', async (t) => {
    const open = opener(t);
    if (!open) return;
    const a = await open();
    const b = await open();
    const sent = run(60, 1000);
    // 3 slots a batch: the coalesced buffer is held and handed out 3 by 3, without new wake-ups.
    const arriving = collect(b, 60, new PacketBatch(3));
    assert.equal(a.sendBatch(batchOf(sent, () => b.port)), 60);
    const got = await arriving;
    assert.deepEqual(
      got.map((g) => g.data),
      sent,
    );
    assert.ok(b.stats.rxCoalesced >= 1);
  });

  test('runs stop at a new destination and after a shorter datagram', async (t) => {
    const open = opener(t);
    if (!open) return;
    const a = await open();
    const b = await open();
    const c = await open();
    // b b c c b b …: never one message across two destinations
    const sent = run(32, 400);
    const toB = sent.filter((_, i) => i % 4 < 2);
    const toC = sent.filter((_, i) => i % 4 >= 2);
    const atB = collect(b, toB.length);
    const atC = collect(c, toC.length);
    assert.equal(a.sendBatch(batchOf(sent, (i) => (i % 4 < 2 ? b.port : c.port))), 32);
    assert.equal(a.stats.txMessages, 16, 'one message per pair');
    assert.deepEqual((await atB).map((g) => g.data), toB);
    assert.deepEqual((await atC).map((g) => g.data), toC);

    // 500, 300 (ends the run), 500, 500, 600 (larger: new run)
    const sizes = [500, 300, 500, 500, 600];
    const mixed = sizes.map((s, i) => Buffer.alloc(s, i + 1));
    const before = a.stats.txMessages;
    const atB2 = collect(b, mixed.length);
    a.sendBatch(batchOf(mixed, () => b.port));
    assert.equal(a.stats.txMessages - before, 3);
    assert.deepEqual((await atB2).map((g) => g.data), mixed);
  });

  test('any run of sizes arrives intact and in order (property)', async (t) => {
    const open = opener(t);
    if (!open) return;
    const a = await open();
    const b = await open();
    const rx = new PacketBatch(16);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 64 }), fc.boolean(), async (sizes, runs) => {
        // runs: stretches of equal sizes (what GSO joins); else arbitrary sizes
        const lens = runs ? sizes.map((s, i) => (i % 8 < 6 ? sizes[i - (i % 8)]! : s)) : sizes;
        const sent = lens.map((l, i) => {
          const d = randomBytes(l);
          d[0] = i;
          return d;
        });
        const arriving = collect(b, sent.length, rx);
        assert.equal(a.sendBatch(batchOf(sent, () => b.port)), sent.length);
        assert.deepEqual(
          (await arriving).map((g) => g.data),
          sent,
        );
      }),
      { numRuns: 60 },
    );
    assert.equal(b.stats.rxTruncated, 0);
  });

  test('MESHD_NO_OFFLOAD=1 sends one datagram per message', async (t) => {
    const open = opener(t);
    if (!open) return;
    const a = await open({ env: { MESHD_NO_OFFLOAD: '1' } });
    const b = await open({ env: { MESHD_NO_OFFLOAD: '1' } });
    assert.deepEqual(a.offload, { gso: false, gro: false });
    const sent = run(20, 1200);
    const arriving = collect(b, 20);
    a.sendBatch(batchOf(sent, () => b.port));
    assert.deepEqual(
      (await arriving).map((g) => g.data),
      sent,
    );
    assert.equal(a.stats.txMessages, 20);
    assert.equal(a.stats.txSegmented, 0);
    assert.equal(b.stats.rxCoalesced, 0);
  });
});

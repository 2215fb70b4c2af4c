/**
 * Batch UDP sockets on loopback: the native (recvmmsg/sendmmsg) and node:dgram implementations
 * pass the same tests, and talk to each other.
 */
import { collect } from '../helpers/udp-collect.js';
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import fc from 'fast-check';
import { loadNative } from '../../src/engine/native/load.js';
import { PacketBatch, writeAddr } from '../../src/engine/packet-batch.js';
import {
  openBatchUdpSocket,
  type BatchUdpOptions,
  type BatchUdpSocket,
  type UdpImplementation,
} from '../../src/engine/udp/batch-udp-socket.js';
import { MeshdError } from '../../src/errors.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const addon = loadNative();
const hasIPv6Loopback = Object.values(networkInterfaces()).some((list) =>
  (list ?? []).some((a) => a.family === 'IPv6' && a.address === '::1'),
);



function fillBatch(payloads: Buffer[], ip: string, port: number): PacketBatch {
  const batch = new PacketBatch(Math.max(1, payloads.length));
  payloads.forEach((p, i) => {
    batch.push(p);
    writeAddr(batch.addrs, i, ip, port);
  });
  return batch;
}

/** 64 payloads of assorted sizes, each tagged with its index. */
function payloads(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const b = randomBytes(1 + ((i * 97) % 1400));
    b[0] = i;
    return b;
  });
}

const IMPLS: UdpImplementation[] = ['native', 'dgram'];

function opener(t: TestContext, impl: UdpImplementation): ((o?: BatchUdpOptions) => Promise<BatchUdpSocket>) | null {
  if (impl === 'native' && !requirePrereqs(t, ['native'])) return null;
  return (o = {}) => openBatchUdpSocket({ ...o, implementation: impl, addon: impl === 'native' ? addon : null });
}

for (const impl of IMPLS) {
  describe(`batch UDP (${impl})`, () => {
    for (const loopback of ['127.0.0.1', '::1']) {
      test(`two sockets on ${loopback} exchange batches of 64, contents and sources intact`, async (t) => {
        const open = opener(t, impl);
        if (!open) return;
        if (loopback === '::1' && !hasIPv6Loopback) {
          if (process.env.MESHD_REQUIRE_PREREQS === '1') throw new Error('no IPv6 loopback');
          t.skip('no IPv6 loopback here');
          return;
        }
        const a = await open({ address: loopback });
        const b = await open({ address: loopback });
        t.after(() => Promise.all([a.close(), b.close()]));
        assert.equal(a.kind, impl);
        assert.equal(a.family, loopback.includes(':') ? 6 : 4);
        assert.equal(a.address, loopback);
        assert.ok(a.port > 0 && b.port > 0 && a.port !== b.port, 'ephemeral ports reported');

        const sent = payloads(64);
        const arriving = collect(b, 64);
        assert.equal(a.sendBatch(fillBatch(sent, loopback, b.port)), 64);
        const got = await arriving;
        assert.equal(got.length, 64);
        got.forEach((g, i) => {
          assert.deepEqual(g.data, sent[i], `datagram ${i}`);
          assert.equal(g.ip, loopback);
          assert.equal(g.port, a.port);
        });

        // Echo: B sends the received batch straight back, each to its source address.
        const echo = new PacketBatch(64);
        const back = collect(a, 64);
        const n = b.receiveBatch(echo); // nothing left waiting: the drain took it all
        assert.equal(n, 0);
        got.forEach((g, i) => {
          echo.push(g.data);
          writeAddr(echo.addrs, i, g.ip, g.port);
        });
        assert.equal(b.sendBatch(echo), 64);
        const returned = await back;
        returned.forEach((r, i) => {
          assert.deepEqual(r.data, sent[i]);
          assert.equal(r.port, b.port);
        });
        assert.equal(a.stats.txPackets, 64);
        assert.equal(a.stats.rxPackets, 64);
        assert.equal(b.stats.rxPackets, 64);
      });
    }

    test('a dual-stack socket on :: hears IPv4 and answers it', async (t) => {
      const open = opener(t, impl);
      if (!open) return;
      const v6 = await open({ address: '::' });
      const v4 = await open({ address: '127.0.0.1' });
      t.after(() => Promise.all([v6.close(), v4.close()]));
      assert.equal(v6.family, 6);
      const inbound = collect(v6, 3);
      v4.sendBatch(fillBatch(payloads(3), '127.0.0.1', v6.port));
      const got = await inbound;
      for (const g of got) {
        assert.equal(g.ip, '127.0.0.1', 'IPv4-mapped sources read back as dotted quads');
        assert.equal(g.port, v4.port);
      }
      const reply = collect(v4, 1);
      assert.equal(v6.sendBatch(fillBatch([Buffer.from('pong')], got[0]!.ip, got[0]!.port)), 1);
      assert.deepEqual((await reply)[0]!.data, Buffer.from('pong'));
    });

    test('datagrams longer than a slot are dropped and counted, the rest delivered in order', async (t) => {
      const open = opener(t, impl);
      if (!open) return;
      const a = await open({ address: '127.0.0.1' });
      const b = await open({ address: '127.0.0.1' });
      t.after(() => Promise.all([a.close(), b.close()]));
      const small = new PacketBatch(8, 128);
      const sizes = [10, 500, 128, 129, 0, 64];
      const sent = sizes.map((s, i) => Buffer.alloc(s, i + 1));
      const arriving = collect(b, 4, small);
      assert.equal(a.sendBatch(fillBatch(sent, '127.0.0.1', b.port)), sizes.length);
      const got = await arriving;
      assert.deepEqual(
        got.map((g) => g.data),
        [sent[0], sent[2], sent[4], sent[5]],
      );
      assert.equal(b.stats.rxTruncated, 2);
    });

    test('an IPv4 socket skips an IPv6 destination, counts it, and sends the rest', async (t) => {
      const open = opener(t, impl);
      if (!open) return;
      const a = await open({ address: '127.0.0.1' });
      const b = await open({ address: '127.0.0.1' });
      t.after(() => Promise.all([a.close(), b.close()]));
      const batch = fillBatch([Buffer.from('one'), Buffer.from('two'), Buffer.from('three')], '127.0.0.1', b.port);
      writeAddr(batch.addrs, 1, '2001:db8::1', 9);
      const arriving = collect(b, 2);
      assert.equal(a.sendBatch(batch), 2);
      assert.equal(a.stats.txErrors, 1);
      assert.equal(a.stats.lastError, 'EAFNOSUPPORT');
      assert.deepEqual(
        (await arriving).map((g) => g.data.toString()),
        ['one', 'three'],
      );
    });

    test('closed sockets refuse work; a busy port is a clear error', async (t) => {
      const open = opener(t, impl);
      if (!open) return;
      const a = await open({ address: '127.0.0.1' });
      await assert.rejects(
        open({ address: '127.0.0.1', port: a.port }),
        (e: unknown) => e instanceof MeshdError && e.code === 'E_ENGINE',
      );
      await a.close();
      await a.close(); // idempotent
      assert.throws(() => a.receiveBatch(new PacketBatch(1)), MeshdError);
    });
  });
}

describe('batch UDP across implementations', () => {
  test('native ⇄ dgram carry random batches of random sizes', async (t) => {
    if (!requirePrereqs(t, ['native'])) return;
    const native = await openBatchUdpSocket({ address: '127.0.0.1', implementation: 'native' });
    const dgram = await openBatchUdpSocket({ address: '127.0.0.1', implementation: 'dgram' });
    t.after(() => Promise.all([native.close(), dgram.close()]));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 1472 }), { minLength: 1, maxLength: 64 }),
        fc.boolean(),
        async (sizes, nativeSends) => {
          const [from, to] = nativeSends ? [native, dgram] : [dgram, native];
          const sent = sizes.map((s) => randomBytes(s));
          const arriving = collect(to, sent.length);
          assert.equal(from.sendBatch(fillBatch(sent, '127.0.0.1', to.port)), sent.length);
          const got = await arriving;
          assert.deepEqual(
            got.map((g) => g.data),
            sent,
          );
          for (const g of got) assert.equal(g.port, from.port);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('socket mark: native sockets carry it when the addon can set it (root); node:dgram never; a bad mark is refused', async (t) => {
    const d = await openBatchUdpSocket({ address: '127.0.0.1', implementation: 'dgram', mark: 0x5282 });
    assert.equal(d.mark, 0);
    await d.close();
    await assert.rejects(openBatchUdpSocket({ address: '127.0.0.1', mark: -1 }), (e: unknown) => e instanceof MeshdError && e.code === 'E_ENGINE');
    if (!requirePrereqs(t, ['native'])) return;
    const addon = loadNative()!;
    const n = await openBatchUdpSocket({ address: '127.0.0.1', implementation: 'native', mark: 0x5282 });
    t.after(() => n.close());
    assert.equal(n.mark, typeof addon.udpSetMark === 'function' && process.getuid?.() === 0 ? 0x5282 : 0);
    const plain = await openBatchUdpSocket({ address: '127.0.0.1', implementation: 'native' });
    assert.equal(plain.mark, 0);
    await plain.close();
  });

  test('choosing: MESHD_PURE_TS=1 → dgram; native without the addon → E_NATIVE; bad address → E_ENGINE', async () => {
    const s = await openBatchUdpSocket({ address: '127.0.0.1', env: { MESHD_PURE_TS: '1' } });
    assert.equal(s.kind, 'dgram');
    await s.close();
    const fallback = await openBatchUdpSocket({ address: '127.0.0.1', addon: null, env: {} });
    assert.equal(fallback.kind, 'dgram');
    await fallback.close();
    await assert.rejects(
      openBatchUdpSocket({ implementation: 'native', addon: null }),
      (e: unknown) => e instanceof MeshdError && e.code === 'E_NATIVE',
    );
    await assert.rejects(
      openBatchUdpSocket({ address: 'localhost' }),
      (e: unknown) => e instanceof MeshdError && e.code === 'E_ENGINE',
    );
    await assert.rejects(
      openBatchUdpSocket({ address: '127.0.0.1', port: 70000 }),
      (e: unknown) => e instanceof MeshdError && e.code === 'E_ENGINE',
    );
  });
});

/**
 * The native AEAD shared between threads: for random batches (sizes, keys, counters, refused
 * slots, a corrupted packet in the middle) sealing and opening on 2..8 threads must give the
 * same bytes, lengths, results and auth failures as one thread, and the counters must show that
 * the batches were really shared. Plus the size threshold, the environment setting, and an
 * environment (a worker thread) ending with the pool running.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { NativeAeadBatch } from '../../src/engine/crypto/aead-batch.js';
import { cryptoThreadSetting, defaultCryptoThreads, DEFAULT_PARALLEL_MIN_BYTES } from '../../src/engine/crypto/crypto-threads.js';
import { tryLoadNative } from '../../src/engine/native/load.js';
import type { NativeAddon } from '../../src/engine/native/addon.js';
import { HEADROOM, PacketBatch } from '../../src/engine/packet-batch.js';
import { MeshdError } from '../../src/errors.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { bytesFromSeed } from '../helpers/seeded-bytes.js';

const loaded = tryLoadNative();
const NKEYS = 3;

interface Spec {
  len: number;
  key: number; // NKEYS: a key index outside the table (refused)
  counter: bigint;
  seed: number;
}

const specArb = fc.record({
  len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1000, max: 1420 })),
  key: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: NKEYS - 1 }) }, { weight: 1, arbitrary: fc.constant(NKEYS) }),
  counter: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  seed: fc.integer(),
});

interface Job {
  batch: PacketBatch;
  keyIndex: Uint32Array;
  counters: BigUint64Array;
  ok: Uint8Array;
}

function job(specs: Spec[]): Job {
  const batch = new PacketBatch(specs.length);
  for (const s of specs) batch.push(bytesFromSeed(s.seed, s.len), HEADROOM);
  return {
    batch,
    keyIndex: Uint32Array.from(specs.map((s) => s.key)),
    counters: BigUint64Array.from(specs.map((s) => s.counter)),
    ok: new Uint8Array(specs.length).fill(7),
  };
}

/** Everything an AEAD call leaves behind: the whole buffer, the lengths and the results. */
function outcome(j: Job, returned: number): { returned: number; buf: Buffer; lengths: number[]; ok: number[] } {
  return { returned, buf: Buffer.from(j.batch.buf), lengths: Array.from(j.batch.lengths), ok: Array.from(j.ok) };
}

describe('native AEAD on several threads', () => {
  let addon: NativeAddon | null = null;
  const ready = (t: import('node:test').TestContext): NativeAddon | null => {
    if (!requirePrereqs(t, ['native'])) return null;
    if (loaded.addon === null || loaded.addon.aeadThreads === undefined || loaded.addon.aeadStats === undefined) {
      assert.fail('the addon lacks aeadThreads/aeadStats: rebuild it (npm run build:native)');
    }
    addon = loaded.addon;
    return addon;
  };
  after(() => addon?.aeadThreads?.(1, DEFAULT_PARALLEL_MIN_BYTES));

  test('parallel and serial seal/open give identical bytes and the same auth failures', (t) => {
    const a = ready(t);
    if (!a) return;
    const aead = new NativeAeadBatch(a);
    fc.assert(
      fc.property(
        fc.array(specArb, { minLength: 2, maxLength: 90 }),
        fc.constantFrom(2, 3, 4, 8),
        fc.integer(),
        fc.nat(),
        (specs, threads, keySeed, bitPick) => {
          const keys = bytesFromSeed(keySeed, NKEYS * 32);
          const serial = job(specs);
          const parallel = job(specs);
          const before = aead.stats().parallelBatches;

          a.aeadThreads!(1, 0);
          const s1 = outcome(serial, aead.seal(serial.batch, keys, serial.keyIndex, serial.counters, serial.ok));
          a.aeadThreads!(threads, 0);
          const p1 = outcome(parallel, aead.seal(parallel.batch, keys, parallel.keyIndex, parallel.counters, parallel.ok));
          assert.deepEqual(p1, s1, 'seal');
          assert.equal(s1.returned, specs.filter((s) => s.key < NKEYS).length);

          // corrupt the packet in the middle (a bit of its ciphertext or tag) in both
          const mid = specs.length >> 1;
          for (const j of [serial, parallel]) {
            const bit = bitPick % (j.batch.lengths[mid]! * 8);
            j.batch.buf[j.batch.offsets[mid]! + (bit >> 3)]! ^= 1 << (bit & 7);
            j.ok.fill(5);
          }
          a.aeadThreads!(1, 0);
          const s2 = outcome(serial, aead.open(serial.batch, keys, serial.keyIndex, serial.counters, serial.ok));
          a.aeadThreads!(threads, 0);
          const p2 = outcome(parallel, aead.open(parallel.batch, keys, parallel.keyIndex, parallel.counters, parallel.ok));
          assert.deepEqual(p2, s2, 'open');
          assert.equal(s2.ok[mid], 0, 'the corrupted packet fails');
          for (let i = 0; i < specs.length; i++) {
            if (i === mid) continue;
            assert.equal(s2.ok[i], specs[i]!.key < NKEYS ? 1 : 0, `packet ${i}`);
            if (specs[i]!.key < NKEYS) assert.deepEqual(parallel.batch.packet(i), Buffer.from(bytesFromSeed(specs[i]!.seed, specs[i]!.len)));
          }
          assert.equal(aead.stats().parallelBatches, before + 2, 'both parallel calls were shared between threads');
        },
      ),
      { numRuns: 120 },
    );
    const s = aead.stats();
    assert.ok(s.workers >= 1 && s.parallelSlices >= 2 * s.parallelBatches, JSON.stringify(s));
  });

  test('the ChaCha20/Poly1305 primitives without EVP give EVP\'s bytes and auth failures', (t) => {
    const a = ready(t);
    if (!a) return;
    if (a.aeadUseDirect?.(true) !== true) {
      t.skip('this Node does not export the primitives: EVP only');
      return;
    }
    const aead = new NativeAeadBatch(a);
    a.aeadThreads!(1, 0);
    fc.assert(
      fc.property(fc.array(specArb, { minLength: 1, maxLength: 40 }), fc.integer(), fc.nat(), (specs, keySeed, bitPick) => {
        const keys = bytesFromSeed(keySeed, NKEYS * 32);
        const evp = job(specs);
        const direct = job(specs);
        a.aeadUseDirect!(false);
        const e1 = outcome(evp, aead.seal(evp.batch, keys, evp.keyIndex, evp.counters, evp.ok));
        assert.equal(aead.stats().direct, 0);
        a.aeadUseDirect!(true);
        const d1 = outcome(direct, aead.seal(direct.batch, keys, direct.keyIndex, direct.counters, direct.ok));
        assert.equal(aead.stats().direct, 1);
        assert.deepEqual(d1, e1, 'seal');
        const mid = specs.length >> 1;
        for (const j of [evp, direct]) {
          const bit = bitPick % (j.batch.lengths[mid]! * 8);
          j.batch.buf[j.batch.offsets[mid]! + (bit >> 3)]! ^= 1 << (bit & 7);
        }
        a.aeadUseDirect!(false);
        const e2 = outcome(evp, aead.open(evp.batch, keys, evp.keyIndex, evp.counters, evp.ok));
        a.aeadUseDirect!(true);
        const d2 = outcome(direct, aead.open(direct.batch, keys, direct.keyIndex, direct.counters, direct.ok));
        assert.deepEqual(d2, e2, 'open');
        assert.equal(d2.ok[mid], 0);
      }),
      { numRuns: 150 },
    );
  });

  test('a sub-range (start/count) on several threads touches only that range', (t) => {
    const a = ready(t);
    if (!a) return;
    const aead = new NativeAeadBatch(a);
    const specs = Array.from({ length: 40 }, (_, i) => ({ len: 1400, key: 0, counter: BigInt(i), seed: i + 1 }));
    const keys = bytesFromSeed(3, 32);
    const serial = job(specs);
    const parallel = job(specs);
    a.aeadThreads!(1, 0);
    const s = outcome(serial, aead.seal(serial.batch, keys, serial.keyIndex, serial.counters, serial.ok, 10, 20));
    a.aeadThreads!(4, 0);
    const p = outcome(parallel, aead.seal(parallel.batch, keys, parallel.keyIndex, parallel.counters, parallel.ok, 10, 20));
    assert.deepEqual(p, s);
    assert.equal(p.returned, 20);
    assert.deepEqual(p.ok, [...Array(10).fill(7), ...Array(20).fill(1), ...Array(10).fill(7)]);
  });

  test('batches below minBytes stay on the calling thread', (t) => {
    const a = ready(t);
    if (!a) return;
    const aead = new NativeAeadBatch(a);
    a.aeadThreads!(2, 10_000);
    const keys = bytesFromSeed(9, 32);
    const small = job(Array.from({ length: 6 }, (_, i) => ({ len: 1000, key: 0, counter: BigInt(i), seed: i + 1 })));
    const big = job(Array.from({ length: 12 }, (_, i) => ({ len: 1000, key: 0, counter: BigInt(i), seed: i + 1 })));
    const s0 = aead.stats();
    aead.seal(small.batch, keys, null, small.counters, small.ok);
    const s1 = aead.stats();
    assert.equal(s1.parallelBatches, s0.parallelBatches);
    assert.equal(s1.serialBatches, s0.serialBatches + 1);
    aead.seal(big.batch, keys, null, big.counters, big.ok);
    const s2 = aead.stats();
    assert.equal(s2.parallelBatches, s1.parallelBatches + 1);
    assert.equal(s2.parallelSlices, s1.parallelSlices + 2);
    assert.equal(s2.parallelPackets, s1.parallelPackets + 12);
    assert.deepEqual({ threads: s2.threads, workers: s2.workers, minBytes: s2.minBytes }, { threads: 2, workers: 1, minBytes: 10_000 });
    // threads 0/1: off, and the pool is joined when the size changes
    a.aeadThreads!(0, 0);
    aead.seal(big.batch, keys, null, big.counters, big.ok);
    const s3 = aead.stats();
    assert.equal(s3.parallelBatches, s2.parallelBatches);
    assert.equal(s3.workers, 0);
    assert.throws(() => a.aeadThreads!(65, 0), RangeError);
    assert.throws(() => a.aeadThreads!(2, -1), RangeError);
  });

  test('an environment that ends with its workers running exits cleanly', async (t) => {
    const a = ready(t);
    if (!a || loaded.addon === null) return;
    // a worker thread is an environment of its own: its pool starts there and is joined at its teardown
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      addon.aeadThreads(3, 0);
      const n = 32, buf = new Uint8Array(n * 1500), offsets = new Uint32Array(n), lengths = new Uint32Array(n);
      for (let i = 0; i < n; i++) { offsets[i] = i * 1500; lengths[i] = 1400; }
      const ok = new Uint8Array(n);
      const sealed = addon.aeadSeal(buf, offsets, lengths, 0, n, new Uint8Array(32), null, new BigUint64Array(n), ok);
      parentPort.postMessage({ sealed, stats: addon.aeadStats() });
    `;
    const w = new Worker(code, { eval: true, workerData: { path: loaded.path } });
    const msg = await new Promise<{ sealed: number; stats: { workers: number; parallelBatches: number } }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    const exitCode = await new Promise<number>((resolve) => w.once('exit', resolve));
    assert.equal(msg.sealed, 32);
    assert.equal(msg.stats.workers, 2);
    assert.equal(msg.stats.parallelBatches, 1);
    assert.equal(exitCode, 0);
  });
});

describe('the thread setting from the environment', () => {
  test('MESHD_CRYPTO_THREADS and MESHD_CRYPTO_PARALLEL_BYTES, with defaults by core count', () => {
    assert.deepEqual(cryptoThreadSetting({ MESHD_CRYPTO_THREADS: '3', MESHD_CRYPTO_PARALLEL_BYTES: '1000' }), { threads: 3, minBytes: 1000, direct: true });
    assert.deepEqual(cryptoThreadSetting({ MESHD_CRYPTO_THREADS: '0', MESHD_AEAD_EVP: '1' }), { threads: 1, minBytes: DEFAULT_PARALLEL_MIN_BYTES, direct: false });
    assert.equal(cryptoThreadSetting({}, 2).threads, defaultCryptoThreads(2));
    assert.equal(defaultCryptoThreads(2), 1);
    assert.ok(defaultCryptoThreads(8) > 1);
  });

  test('a malformed value is E_CONFIG_INVALID naming the variable', () => {
    for (const env of [{ MESHD_CRYPTO_THREADS: 'many' }, { MESHD_CRYPTO_THREADS: '-1' }, { MESHD_CRYPTO_THREADS: '1.5' }, { MESHD_CRYPTO_PARALLEL_BYTES: '1e99' }]) {
      assert.throws(
        () => cryptoThreadSetting(env),
        (e: unknown) => e instanceof MeshdError && e.code === 'E_CONFIG_INVALID' && /MESHD_CRYPTO_/.test(e.message),
        JSON.stringify(env),
      );
    }
  });
});

/**
 * ChaCha20-Poly1305 cost per WireGuard transport packet: the native batch (OpenSSL through the
 * addon, one call per batch) against node:crypto's createCipheriv per packet, measured in the
 * same run. 1420-byte packets in batches of 64; the native batch through EVP and straight on the
 * ChaCha20/Poly1305 primitives (aeadUseDirect). Then the native batch on 1 thread against N
 * threads (MESHD_CRYPTO_THREADS, default os.availableParallelism()), seal and open in Gbit/s of
 * plaintext, for batches of 16, 45 (one 64 KiB TCP super-segment) and 128 packets, alternating
 * 1 and N within the run so both see the same machine.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/crypto.js
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { NativeAeadBatch, NodeCryptoAeadBatch, type AeadBatch } from '../src/engine/crypto/aead-batch.js';
import { tryLoadNative } from '../src/engine/native/load.js';
import type { NativeAddon } from '../src/engine/native/addon.js';
import { HEADROOM, PacketBatch } from '../src/engine/packet-batch.js';

const PACKET = 1420;
const BATCH = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? '1');

/** Run fn (which handles `perCall` packets) repeatedly for about SECONDS; returns µs per packet. */
function measure(fn: () => void, perCall: number): number {
  for (let i = 0; i < 50; i++) fn();
  let calls = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(SECONDS * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 20; i++) fn();
    calls += 20;
    elapsed = process.hrtime.bigint() - start;
  }
  return Number(elapsed) / 1e3 / (calls * perCall);
}

const key = randomBytes(32);
const batch = new PacketBatch(BATCH);
for (let i = 0; i < BATCH; i++) batch.push(randomBytes(PACKET), HEADROOM);
const counters = new BigUint64Array(BATCH);
const ok = new Uint8Array(BATCH);

function resetLengths(): void {
  for (let i = 0; i < BATCH; i++) batch.lengths[i] = PACKET;
}

// Reference: what a per-packet node:crypto data path does.
const nonce = Buffer.alloc(12);
function createCipherivPerPacket(): void {
  for (let i = 0; i < BATCH; i++) {
    nonce.writeBigUInt64LE(counters[i]!, 4);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const off = batch.offsets[i]!;
    const ct = c.update(batch.buf.subarray(off, off + PACKET));
    c.final();
    batch.buf.set(ct, off);
    batch.buf.set(c.getAuthTag(), off + PACKET);
  }
}

function sealWith(aead: AeadBatch): () => void {
  return () => {
    resetLengths();
    for (let i = 0; i < BATCH; i++) counters[i] = counters[i]! + 1n;
    aead.seal(batch, key, null, counters, ok);
  };
}

function roundTripWith(aead: AeadBatch): () => void {
  return () => {
    resetLengths();
    aead.seal(batch, key, null, counters, ok);
    if (aead.open(batch, key, null, counters, ok) !== BATCH) throw new Error('round trip failed');
  };
}

const rows: Array<[string, number]> = [];
const reference = measure(createCipherivPerPacket, BATCH);
rows.push(['createCipheriv per packet (reference)', reference]);
const ts = new NodeCryptoAeadBatch();
rows.push(['pure-TS batch seal (node:crypto)', measure(sealWith(ts), BATCH)]);
rows.push(['pure-TS batch seal+open', measure(roundTripWith(ts), BATCH)]);
const loaded = tryLoadNative();
if (loaded.addon !== null) {
  const addon = loaded.addon;
  const native = new NativeAeadBatch(addon);
  // EVP, then the primitives directly where the addon has them (aeadUseDirect), in the same run
  const modes: Array<[string, boolean]> = addon.aeadUseDirect ? [['EVP', false], ['direct', true]] : [['EVP', false]];
  for (const [mode, direct] of modes) {
    addon.aeadUseDirect?.(direct);
    rows.push([`native batch seal (${mode})`, measure(sealWith(native), BATCH)]);
    rows.push([`native batch seal+open (${mode})`, measure(roundTripWith(native), BATCH)]);
  }
  addon.aeadUseDirect?.(true);
}

console.log(`ChaCha20-Poly1305, ${PACKET}-byte packets, batch of ${BATCH} (node ${process.version}` +
  (loaded.addon ? `, ${loaded.addon.opensslVersion()})` : ')'));
for (const [name, us] of rows) {
  console.log(`${name.padEnd(40)} ${us.toFixed(2).padStart(7)} µs/packet   ${(reference / us).toFixed(2).padStart(5)}× reference`);
}
if (loaded.addon === null) console.log(`native: unavailable (${loaded.reason})`);

/** Seal or open Gbit/s (plaintext bits) of the native batch with `threads` threads, batches of `n` packets. */
function threadsRow(addon: NativeAddon, native: AeadBatch, n: number, threads: number): { seal: number; open: number } {
  addon.aeadThreads!(threads, 0);
  const b = new PacketBatch(n);
  for (let i = 0; i < n; i++) b.push(randomBytes(PACKET), HEADROOM);
  const ctr = new BigUint64Array(n);
  const okN = new Uint8Array(n);
  const sealOnly = (): void => {
    for (let i = 0; i < n; i++) b.lengths[i] = PACKET;
    native.seal(b, key, null, ctr, okN);
  };
  const sealUs = measure(sealOnly, n);
  // open needs sealed packets: seal once, then open copies of them
  for (let i = 0; i < n; i++) b.lengths[i] = PACKET;
  native.seal(b, key, null, ctr, okN);
  const sealed = new Uint8Array(b.buf); // a copy (Buffer#slice would be a view)
  const openOnly = (): void => {
    b.buf.set(sealed);
    for (let i = 0; i < n; i++) b.lengths[i] = PACKET + 16;
    if (native.open(b, key, null, ctr, okN) !== n) throw new Error('open failed');
  };
  // the copy back is part of each call: measure it alone and take it out
  const copyUs = measure(() => b.buf.set(sealed), n);
  const openUs = measure(openOnly, n) - copyUs;
  const gbps = (us: number): number => (PACKET * 8) / (us * 1e3);
  return { seal: gbps(sealUs), open: gbps(openUs) };
}

if (loaded.addon !== null && loaded.addon.aeadThreads !== undefined) {
  const addon = loaded.addon;
  const native = new NativeAeadBatch(addon);
  const envThreads = Number(process.env.MESHD_CRYPTO_THREADS ?? '');
  const nThreads = Number.isInteger(envThreads) && envThreads > 1 ? envThreads : Math.max(2, availableParallelism());
  console.log(`\nnative batch, 1 thread vs ${nThreads} (caller included; ${availableParallelism()} CPUs), Gbit/s of plaintext`);
  console.log(`${'packets/batch'.padEnd(14)} ${'seal 1'.padStart(7)} ${`seal ${nThreads}`.padStart(7)} ${'ratio'.padStart(6)}   ${'open 1'.padStart(7)} ${`open ${nThreads}`.padStart(7)} ${'ratio'.padStart(6)}`);
  for (const n of [16, 45, 128]) {
    // 1, N, 1, N: the mean of two runs each, interleaved against drift in the machine's load
    const one = [threadsRow(addon, native, n, 1), threadsRow(addon, native, n, 1)];
    const many = [threadsRow(addon, native, n, nThreads), threadsRow(addon, native, n, nThreads)];
    const mean = (rs: Array<{ seal: number; open: number }>, k: 'seal' | 'open'): number => rs.reduce((s, r) => s + r[k], 0) / rs.length;
    const s1 = mean(one, 'seal');
    const sN = mean(many, 'seal');
    const o1 = mean(one, 'open');
    const oN = mean(many, 'open');
    console.log(
      `${String(n).padEnd(14)} ${s1.toFixed(2).padStart(7)} ${sN.toFixed(2).padStart(7)} ${(sN / s1).toFixed(2).padStart(5)}×   ` +
        `${o1.toFixed(2).padStart(7)} ${oN.toFixed(2).padStart(7)} ${(oN / o1).toFixed(2).padStart(5)}×`,
    );
  }
  addon.aeadThreads!(1, 0);
}

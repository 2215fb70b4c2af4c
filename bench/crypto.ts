/**
 * ChaCha20-Poly1305 cost per WireGuard transport packet: the native batch (OpenSSL through the
 * addon, one call per batch) against node:crypto's createCipheriv per packet, measured in the
 * same run. 1420-byte packets in batches of 64.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/crypto.js
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { NativeAeadBatch, NodeCryptoAeadBatch, type AeadBatch } from '../src/engine/crypto/aead-batch.js';
import { tryLoadNative } from '../src/engine/native/load.js';
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
  const native = new NativeAeadBatch(loaded.addon);
  rows.push(['native batch seal', measure(sealWith(native), BATCH)]);
  rows.push(['native batch seal+open', measure(roundTripWith(native), BATCH)]);
}

console.log(`ChaCha20-Poly1305, ${PACKET}-byte packets, batch of ${BATCH} (node ${process.version}` +
  (loaded.addon ? `, ${loaded.addon.opensslVersion()})` : ')'));
for (const [name, us] of rows) {
  console.log(`${name.padEnd(40)} ${us.toFixed(2).padStart(7)} µs/packet   ${(reference / us).toFixed(2).padStart(5)}× reference`);
}
if (loaded.addon === null) console.log(`native: unavailable (${loaded.reason})`);

/**
 * Batch ChaCha20-Poly1305 (WireGuard transport nonce): both implementations must match
 * createCipheriv byte for byte, reject any tampering, and leave bad slots flagged 0.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { poly1305 } from '@noble/ciphers/_poly1305.js';
import {
  AEAD_TAG_SIZE,
  createAeadBatch,
  NativeAeadBatch,
  NodeCryptoAeadBatch,
  type AeadBatch,
  type CounterArray,
} from '../../src/engine/crypto/aead-batch.js';
import { loadNative, tryLoadNative } from '../../src/engine/native/load.js';
import { HEADROOM, PacketBatch } from '../../src/engine/packet-batch.js';
import { MeshdError } from '../../src/errors.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { bytesFromSeed } from '../helpers/seeded-bytes.js';

const addon = loadNative();

/** Reference: one packet through createCipheriv with the WireGuard nonce built independently. */
function refSeal(key: Uint8Array, counter: bigint, plaintext: Uint8Array): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(counter, 4);
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([ct, c.getAuthTag()]);
}

function counterArray(values: bigint[], asPairs: boolean): CounterArray {
  const big = BigUint64Array.from(values);
  if (!asPairs) return big;
  const pairs = new Uint32Array(values.length * 2);
  values.forEach((v, i) => {
    pairs[2 * i] = Number(v & 0xffffffffn);
    pairs[2 * i + 1] = Number(v >> 32n);
  });
  return pairs;
}

interface Spec {
  len: number;
  key: number;
  counter: bigint;
  seed: number;
}

const specArb = fc.record({
  len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 1500 })),
  key: fc.integer({ min: 0, max: 3 }),
  counter: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  seed: fc.integer(),
});

const NKEYS = 4;

/** Build a batch with the plaintexts at HEADROOM, as the TUN reader leaves them. */
function buildBatch(specs: Spec[], keys: Uint8Array, asPairs: boolean) {
  const batch = new PacketBatch(Math.max(1, specs.length));
  const plaintexts = specs.map((s) => bytesFromSeed(s.seed, s.len));
  for (const p of plaintexts) batch.push(p, HEADROOM);
  const keyIndex = Uint32Array.from(specs.map((s) => s.key));
  const counters = counterArray(
    specs.map((s) => s.counter),
    asPairs,
  );
  const expected = specs.map((s, i) =>
    refSeal(keys.subarray(s.key * 32, s.key * 32 + 32), s.counter, plaintexts[i]!),
  );
  return { batch, plaintexts, keyIndex, counters, expected, ok: new Uint8Array(batch.capacity) };
}

function implementations(): Array<{ name: string; make: () => AeadBatch | null }> {
  return [
    { name: 'node-crypto', make: () => new NodeCryptoAeadBatch() },
    { name: 'native', make: () => (addon ? new NativeAeadBatch(addon) : null) },
  ];
}

for (const impl of implementations()) {
  describe(`aead batch (${impl.name})`, () => {
    const ready = (t: import('node:test').TestContext): AeadBatch | null => {
      if (impl.name === 'native' && !requirePrereqs(t, ['native'])) return null;
      return impl.make();
    };

    test('seal matches createCipheriv byte for byte and open round-trips', (t) => {
      const aead = ready(t);
      if (!aead) return;
      fc.assert(
        fc.property(
          fc.array(specArb, { minLength: 1, maxLength: 24 }),
          fc.uint8Array({ minLength: NKEYS * 32, maxLength: NKEYS * 32 }),
          fc.boolean(),
          (specs, keys, asPairs) => {
            const { batch, plaintexts, keyIndex, counters, expected, ok } = buildBatch(specs, keys, asPairs);
            assert.equal(aead.seal(batch, keys, keyIndex, counters, ok), specs.length);
            for (let i = 0; i < specs.length; i++) {
              assert.equal(ok[i], 1);
              assert.equal(batch.offsets[i], batch.slotStart(i) + HEADROOM);
              assert.equal(batch.lengths[i], specs[i]!.len + AEAD_TAG_SIZE);
              assert.deepEqual(Buffer.from(batch.packet(i)), expected[i]);
            }
            ok.fill(7);
            assert.equal(aead.open(batch, keys, keyIndex, counters, ok), specs.length);
            for (let i = 0; i < specs.length; i++) {
              assert.equal(ok[i], 1);
              assert.equal(batch.lengths[i], specs[i]!.len);
              assert.deepEqual(batch.packet(i), Buffer.from(plaintexts[i]!));
            }
          },
        ),
        { numRuns: 150 },
      );
    });

    test('open rejects a flipped bit, a wrong counter and a wrong key, and only that packet', (t) => {
      const aead = ready(t);
      if (!aead) return;
      fc.assert(
        fc.property(
          fc.array(specArb, { minLength: 1, maxLength: 12 }),
          fc.nat(),
          fc.nat(),
          fc.constantFrom('bit', 'counter', 'key'),
          (specs, pick, bitPick, how) => {
            const keys = bytesFromSeed(pick + 1, NKEYS * 32);
            const { batch, keyIndex, counters, ok } = buildBatch(specs, keys, false);
            aead.seal(batch, keys, keyIndex, counters, ok);
            const j = pick % specs.length;
            if (how === 'bit') {
              const bit = bitPick % (batch.lengths[j]! * 8);
              batch.buf[batch.offsets[j]! + (bit >> 3)]! ^= 1 << (bit & 7);
            } else if (how === 'counter') {
              const c = counters as BigUint64Array;
              c[j] = c[j]! + 1n;
            } else {
              keyIndex[j] = (keyIndex[j]! + 1 + (bitPick % (NKEYS - 1))) % NKEYS;
            }
            const sealedLen = batch.lengths[j];
            assert.equal(aead.open(batch, keys, keyIndex, counters, ok), specs.length - 1);
            for (let i = 0; i < specs.length; i++) assert.equal(ok[i], i === j ? 0 : 1, `packet ${i}`);
            assert.equal(batch.lengths[j], sealedLen, 'a rejected packet keeps its length');
          },
        ),
        { numRuns: 150 },
      );
    });

    test('known answer: RFC 8439 A.2 #2 keystream under the WireGuard nonce, tag from A.4 #2 key', (t) => {
      const aead = ready(t);
      if (!aead) return;
      // RFC 8439 A.2 test vector #2: key 00..01, nonce 00 00 00 00 00 00 00 00 00 00 00 02, block
      // counter 1 — exactly the AEAD's encryption of WireGuard counter 0x0200000000000000.
      const key = new Uint8Array(32);
      key[31] = 1;
      const plaintext = Buffer.from(
        'Any submission to the IETF intended by the Contributor for publication as all or part of an IETF ' +
          'Internet-Draft or RFC and any statement made within the context of an IETF activity is considered ' +
          'an "IETF Contribution". Such statements include oral statements in IETF sessions, as well as ' +
          'written and electronic communications made at any time or place, which are addressed to',
      );
      const ciphertext = Buffer.from(
        'a3fbf07df3fa2fde4f376ca23e82737041605d9f4f4f57bd8cff2c1d4b7955ec2a97948bd3722915c8f3d337f7d37005' +
          '0e9e96d647b7c39f56e031ca5eb6250d4042e02785ececfa4b4bb5e8ead0440e20b6e8db09d881a7c6132f420e527950' +
          '42bdfa7773d8a9051447b3291ce1411c680465552aa6c405b7764d5e87bea85ad00f8449ed8f72d0d662ab052691ca66' +
          '424bc86d2df80ea41f43abf937d3259dc4b2d0dfb48a6c9139ddd7f76966e928e635553ba76c5c879d7b35d49eb2e62b' +
          '0871cdac638939e25e8a1e0ef9d5280fa8ca328b351c3c765989cbcf3daa8b6ccc3aaf9f3979c92b3720fc88dc95ed84' +
          'a1be059c6499b9fda236e7e818b04b0bc39c1e876b193bfe5569753f88128cc08aaa9b63d1a16f80ef2554d7189c411f' +
          '5869ca52c5b83fa36ff216b9c1d30062bebcfd2dc5bce0911934fda79a86f6e698ced759c3ff9b6477338f3da4f9cd85' +
          '14ea9982ccafb341b2384dd902f3d1ab7ac61dd29c6f21ba5b862f3730e37cfdc4fd806c22f221',
        'hex',
      );
      // RFC 8439 A.4 test vector #2: the Poly1305 one-time key for that key and nonce.
      const oneTimeKey = Buffer.from('ecfa254f845f647473d3cb140da9e87606cb33066c447b87bc2666dde3fbb739', 'hex');
      const macInput = Buffer.alloc(Math.ceil(ciphertext.length / 16) * 16 + 16);
      ciphertext.copy(macInput);
      macInput.writeBigUInt64LE(0n, macInput.length - 16); // no additional data
      macInput.writeBigUInt64LE(BigInt(ciphertext.length), macInput.length - 8);
      const tag = poly1305(macInput, oneTimeKey);

      const batch = new PacketBatch(1);
      batch.push(plaintext, HEADROOM);
      const counters = BigUint64Array.of(0x0200000000000000n);
      const ok = new Uint8Array(1);
      assert.equal(aead.seal(batch, key, null, counters, ok), 1);
      assert.deepEqual(batch.packet(0), Buffer.concat([ciphertext, Buffer.from(tag)]));
      assert.equal(aead.open(batch, key, null, counters, ok), 1);
      assert.deepEqual(batch.packet(0), plaintext);
    });

    test('keepalive (empty) packets, short ciphertexts, missing keys and missing tailroom', (t) => {
      const aead = ready(t);
      if (!aead) return;
      const keys = bytesFromSeed(42, 64);
      const batch = new PacketBatch(4, 128);
      batch.push(new Uint8Array(0), HEADROOM); // keepalive: tag only
      batch.push(bytesFromSeed(1, 10), HEADROOM); // key index out of range
      batch.push(bytesFromSeed(2, 50), HEADROOM);
      batch.push(bytesFromSeed(3, 128 - 8), 0); // last slot: 8 bytes left before the buffer ends, a tag needs 16
      const keyIndex = Uint32Array.of(1, 2, 0, 0);
      const counters = BigUint64Array.of(0n, 1n, 2n, 3n);
      const ok = new Uint8Array(4);
      const lengthsBefore = Array.from(batch.lengths);
      const last = Buffer.from(batch.packet(3));
      const sealed = aead.seal(batch, keys, keyIndex, counters, ok);
      assert.deepEqual(Array.from(ok), [1, 0, 1, 0]);
      assert.equal(sealed, 2);
      assert.equal(batch.lengths[0], 16);
      assert.deepEqual(batch.packet(0), refSeal(keys.subarray(32, 64), 0n, new Uint8Array(0)));
      assert.equal(batch.lengths[1], lengthsBefore[1]);
      assert.deepEqual(Buffer.from(batch.packet(3)), last, 'an unsealable packet is left alone');

      // open: a 15-byte "ciphertext" is shorter than a tag
      const short = new PacketBatch(1);
      short.push(bytesFromSeed(9, 15));
      const okShort = new Uint8Array(1);
      assert.equal(aead.open(short, keys, null, BigUint64Array.of(0n), okShort), 0);
      assert.equal(okShort[0], 0);
      assert.equal(short.lengths[0], 15);
      // the empty keepalive opens back to zero bytes
      keyIndex[1] = 0;
      ok.fill(0);
      assert.equal(aead.open(batch, keys, keyIndex, counters, ok, 0, 1), 1);
      assert.equal(batch.lengths[0], 0);
    });

    test('start/count limit the work to a sub-range', (t) => {
      const aead = ready(t);
      if (!aead) return;
      const keys = bytesFromSeed(5, 32);
      const batch = new PacketBatch(6);
      const plain = [0, 1, 2, 3, 4, 5].map((i) => bytesFromSeed(i + 10, 100 + i));
      for (const p of plain) batch.push(p, HEADROOM);
      const counters = BigUint64Array.of(10n, 11n, 12n, 13n, 14n, 15n);
      const ok = new Uint8Array(6).fill(9);
      assert.equal(aead.seal(batch, keys, null, counters, ok, 2, 3), 3);
      assert.deepEqual(Array.from(ok), [9, 9, 1, 1, 1, 9]);
      for (const i of [0, 1, 5]) assert.deepEqual(batch.packet(i), Buffer.from(plain[i]!));
      for (const i of [2, 3, 4]) assert.deepEqual(batch.packet(i), refSeal(keys, BigInt(10 + i), plain[i]!));
    });

    test('arrays too short for the batch are a RangeError, not a memory error', (t) => {
      const aead = ready(t);
      if (!aead) return;
      const batch = new PacketBatch(4);
      for (let i = 0; i < 4; i++) batch.push(bytesFromSeed(i, 20), HEADROOM);
      const keys = new Uint8Array(32);
      assert.throws(() => aead.seal(batch, keys, null, new BigUint64Array(3), new Uint8Array(4)), RangeError);
      assert.throws(() => aead.seal(batch, keys, null, new BigUint64Array(4), new Uint8Array(3)), RangeError);
      assert.throws(() => aead.seal(batch, keys, new Uint32Array(2), new BigUint64Array(4), new Uint8Array(4)), RangeError);
      assert.throws(() => aead.seal(batch, new Uint8Array(16), null, new BigUint64Array(4), new Uint8Array(4)), RangeError);
    });
  });
}

describe('choosing the implementation', () => {
  test('MESHD_PURE_TS=1 selects node:crypto', () => {
    assert.equal(createAeadBatch({ env: { MESHD_PURE_TS: '1' } }).kind, 'node-crypto');
  });

  test('no addon: auto falls back, native is a clear E_NATIVE error', () => {
    assert.equal(createAeadBatch({ addon: null, env: {} }).kind, 'node-crypto');
    assert.throws(
      () => createAeadBatch({ implementation: 'native', addon: null, env: {} }),
      (e: unknown) => e instanceof MeshdError && e.code === 'E_NATIVE',
    );
  });

  test('auto uses the addon when it is built', (t) => {
    if (!requirePrereqs(t, ['native'])) return;
    assert.equal(createAeadBatch({ env: {} }).kind, 'native');
  });

  test('loadNative returns null with a reason when the file is missing, never throws', () => {
    const r = tryLoadNative({ MESHD_NATIVE_PATH: '/nonexistent/meshd_native.node' });
    assert.equal(r.addon, null);
    assert.match(r.addon === null ? r.reason : '', /missing/);
    assert.equal(loadNative({ MESHD_NATIVE_PATH: '/nonexistent/meshd_native.node' }), null);
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  deriveDeviceKeys,
  ed25519Sign,
  ed25519Verify,
  generateEd25519Seed,
  x25519PublicFromEd25519,
  x25519PublicFromPrivate,
  wgKeyFromBase64,
  wgKeyToBase64,
} from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { meshIPv4For, meshIPv6For } from '../../src/identity/mesh-address.js';
import { DidError } from '../../src/errors.js';

interface Vector {
  ed25519Seed: string;
  ed25519Public: string;
  did: string;
  wireguardPrivateKey: string;
  wireguardPublicKey: string;
  meshIP: string;
  meshIP6: string;
}
const vectors = (JSON.parse(readFileSync(new URL('../../../test/vectors/identity.json', import.meta.url), 'utf8')) as { vectors: Vector[] }).vectors;

test('fixed vectors: Ed25519 public key, did:jwk, WireGuard keys and mesh addresses', () => {
  assert.ok(vectors.length >= 4);
  for (const v of vectors) {
    const k = deriveDeviceKeys(new Uint8Array(Buffer.from(v.ed25519Seed, 'hex')));
    assert.equal(Buffer.from(k.edPublic).toString('hex'), v.ed25519Public);
    assert.equal(formatDidJwk(k.edPublic), v.did);
    assert.equal(wgKeyToBase64(k.xPrivate), v.wireguardPrivateKey);
    assert.equal(wgKeyToBase64(k.xPublic), v.wireguardPublicKey);
    assert.equal(meshIPv4For(v.did), v.meshIP);
    assert.equal(meshIPv6For(v.did), v.meshIP6);
  }
});

test('the birational map of the Ed25519 public key equals X25519(derived private key)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const k = deriveDeviceKeys(seed);
      assert.deepEqual(Buffer.from(x25519PublicFromPrivate(k.xPrivate)), Buffer.from(k.xPublic));
      // clamping
      assert.equal(k.xPrivate[0]! & 7, 0);
      assert.equal(k.xPrivate[31]! & 0x80, 0);
      assert.equal(k.xPrivate[31]! & 0x40, 0x40);
    }),
    { numRuns: 200 },
  );
});

test('fresh identities differ and sign/verify with the device key', () => {
  const a = deriveDeviceKeys(generateEd25519Seed());
  const b = deriveDeviceKeys(generateEd25519Seed());
  assert.notDeepEqual(Buffer.from(a.edPublic), Buffer.from(b.edPublic));
  const msg = new TextEncoder().encode('meshd');
  const sig = ed25519Sign(a.edSeed, msg);
  assert.ok(ed25519Verify(a.edPublic, msg, sig));
  assert.ok(!ed25519Verify(b.edPublic, msg, sig));
});

test('an Ed25519 public key that is not a curve point is rejected with DidError', () => {
  // y = 2 is not on the curve (x^2 has no square root)
  const bad = new Uint8Array(32);
  bad[0] = 2;
  assert.throws(() => x25519PublicFromEd25519(bad), DidError);
  assert.throws(() => x25519PublicFromEd25519(new Uint8Array(31)), DidError);
});

test('WireGuard key base64 round trip rejects non-canonical input', () => {
  const k = deriveDeviceKeys(generateEd25519Seed()).xPublic;
  assert.deepEqual(Buffer.from(wgKeyFromBase64(wgKeyToBase64(k))), Buffer.from(k));
  assert.throws(() => wgKeyFromBase64('abc'));
  assert.throws(() => wgKeyFromBase64(Buffer.alloc(33).toString('base64')));
});

test('property: the BigInt Ed25519 → X25519 map agrees with @noble/curves on keys and on random bytes (both refuse the same non-points)', async () => {
  const { ed25519 } = await import('@noble/curves/ed25519.js');
  const { ed25519PublicToX25519 } = await import('../../src/identity/montgomery.js');
  const ref = (b: Uint8Array): string => {
    try {
      return Buffer.from(ed25519.utils.toMontgomery(b)).toString('hex');
    } catch {
      return 'refused';
    }
  };
  const ours = (b: Uint8Array): string => {
    try {
      return Buffer.from(ed25519PublicToX25519(b)).toString('hex');
    } catch {
      return 'refused';
    }
  };
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => ours(ed25519.getPublicKey(seed)) === ref(ed25519.getPublicKey(seed))), { numRuns: 200 });
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => ours(b) === ref(b)), { numRuns: 500 });
  // the edge cases: identity (y = 1), y = p and above, x = 0 with the sign bit
  const le = (n: bigint, sign = false): Uint8Array => {
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
    if (sign) out[31]! |= 0x80;
    return out;
  };
  const p = 2n ** 255n - 19n;
  for (const b of [le(1n), le(1n, true), le(p - 1n), le(p), le(p + 1n), le(0n), le(0n, true)]) assert.equal(ours(b), ref(b), Buffer.from(b).toString('hex'));
});

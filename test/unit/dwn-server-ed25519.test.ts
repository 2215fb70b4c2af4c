/**
 * The DWN server's Ed25519 check (src/dwn/server-ed25519.ts) against the SDK's own (noble):
 * both accept every honest signature, and the native one accepts nothing the SDK refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { nativeEd25519Verify } from '../../src/dwn/server-ed25519.js';

type Jwk = { kty?: unknown; crv?: unknown; x?: unknown };
const nobleVerify = async (content: Uint8Array, sig: Uint8Array, jwk: Jwk): Promise<boolean> => {
  try {
    return ed25519.verify(sig, content, Buffer.from(String(jwk.x), 'base64url'));
  } catch {
    return false;
  }
};
const jwkOf = (pub: Uint8Array): Jwk => ({ kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub).toString('base64url') });

test('honest signatures verify; any flipped bit of message, signature or key does not, as with the SDK', async () => {
  const verify = nativeEd25519Verify(async () => {
    throw new Error('fallback must not be used for an Ed25519 JWK');
  });
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.constantFrom('msg', 'sig', 'key'), async (seed, msg, at, what) => {
      const pub = ed25519.getPublicKey(seed);
      const sig = ed25519.sign(msg, seed);
      assert.equal(await verify(msg, sig, jwkOf(pub)), true);
      const m = Uint8Array.from(msg);
      const s = Uint8Array.from(sig);
      const k = Uint8Array.from(pub);
      if (what === 'msg' && m.length > 0) m[at % m.length]! ^= 1 << (at % 8);
      else if (what === 'sig') s[at % 64]! ^= 1 << (at % 8);
      else k[at % 32]! ^= 1 << (at % 8);
      if (what === 'msg' && m.length === 0) return;
      const sdk = await nobleVerify(m, s, jwkOf(k));
      let native: boolean;
      try {
        native = await verify(m, s, jwkOf(k));
      } catch {
        native = false; // a flipped key that is no curve point: OpenSSL refuses the key
      }
      assert.equal(native, false);
      assert.equal(sdk, false);
    }),
    { numRuns: 300 },
  );
});

test('wrong-length signatures are refused; keys that are not Ed25519 JWKs go to the SDK', async () => {
  const seen: Jwk[] = [];
  const verify = nativeEd25519Verify(async (_c, _s, jwk) => {
    seen.push(jwk);
    return false;
  });
  const seed = new Uint8Array(32).fill(7);
  const pub = ed25519.getPublicKey(seed);
  const msg = new TextEncoder().encode('m');
  const sig = ed25519.sign(msg, seed);
  assert.equal(await verify(msg, sig.subarray(0, 63), jwkOf(pub)), false);
  assert.equal(await verify(msg, new Uint8Array([...sig, 0]), jwkOf(pub)), false);
  assert.equal(seen.length, 0);
  for (const jwk of [{ kty: 'EC', crv: 'secp256k1', x: 'AA' }, { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }, { kty: 'OKP', crv: 'Ed25519' }]) {
    assert.equal(await verify(msg, sig, jwk), false);
  }
  assert.equal(seen.length, 3);
});

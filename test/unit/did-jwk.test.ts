import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DidJwk } from '@web5/dids';
import { canonicalDid, formatDidJwk, parseDidJwk, sameDid } from '../../src/identity/did-jwk.js';
import { deriveDeviceKeys, generateEd25519Seed, x25519PublicFromEd25519 } from '../../src/identity/keys.js';
import { resolveDid } from '../../src/identity/resolve.js';
import { DidError } from '../../src/errors.js';

const b64u = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('format/parse round trip for any 32-byte key that is a curve point', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const k = deriveDeviceKeys(seed);
      const did = formatDidJwk(k.edPublic);
      assert.deepEqual(Buffer.from(parseDidJwk(did)), Buffer.from(k.edPublic));
      assert.equal(canonicalDid(did), did);
    }),
    { numRuns: 200 },
  );
});

test('member order, extra members and fragments do not change the key', () => {
  const k = deriveDeviceKeys(generateEd25519Seed());
  const x = Buffer.from(k.edPublic).toString('base64url');
  const canonical = formatDidJwk(k.edPublic);
  const variants = [
    `did:jwk:${b64u({ kty: 'OKP', crv: 'Ed25519', x })}`,
    `did:jwk:${b64u({ x, kty: 'OKP', crv: 'Ed25519', kid: 'abc', alg: 'EdDSA', use: 'sig' })}`,
    `${canonical}#0`,
  ];
  for (const v of variants) {
    assert.deepEqual(Buffer.from(parseDidJwk(v)), Buffer.from(k.edPublic));
    assert.ok(sameDid(v, canonical));
    assert.equal(canonicalDid(v.split('#')[0]!), canonical);
  }
});

test('malformed DIDs are rejected with DidError, never another exception', () => {
  const x = Buffer.alloc(32, 7).toString('base64url');
  const bad = [
    '',
    'did:key:z6Mk',
    'did:jwk:',
    'did:jwk:!!!',
    `did:jwk:${Buffer.from('not json').toString('base64url')}`,
    `did:jwk:${b64u([1, 2])}`,
    `did:jwk:${b64u({ kty: 'EC', crv: 'P-256', x })}`,
    `did:jwk:${b64u({ kty: 'OKP', crv: 'X25519', x })}`,
    `did:jwk:${b64u({ kty: 'OKP', crv: 'Ed25519', x: x.slice(0, 10) })}`,
    `did:jwk:${b64u({ kty: 'OKP', crv: 'Ed25519', x, d: x })}`,
    `did:jwk:${b64u({ kty: 'OKP', crv: 'Ed25519' })}`,
    `did:jwk:${'A'.repeat(5000)}`,
  ];
  for (const d of bad) assert.throws(() => parseDidJwk(d), DidError, d.slice(0, 40));
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) => {
      try {
        parseDidJwk(`did:jwk:${s}`);
      } catch (e) {
        assert.ok(e instanceof DidError);
      }
    }),
  );
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      try {
        parseDidJwk(`did:jwk:${b64u(v)}`);
      } catch (e) {
        assert.ok(e instanceof DidError);
      }
    }),
  );
});

test('a did:jwk from @web5/dids (DidJwk.create, Ed25519) maps to the same X25519 key', async () => {
  const bearer = await DidJwk.create({ options: { algorithm: 'Ed25519' } });
  const ours = parseDidJwk(bearer.uri);
  const jwk = bearer.document.verificationMethod?.[0]?.publicKeyJwk;
  assert.ok(jwk && typeof jwk.x === 'string');
  assert.deepEqual(Buffer.from(ours), Buffer.from(jwk.x, 'base64url'));
  const viaCanonical = x25519PublicFromEd25519(parseDidJwk(canonicalDid(bearer.uri)));
  assert.deepEqual(Buffer.from(x25519PublicFromEd25519(ours)), Buffer.from(viaCanonical));
  // resolution through our resolver (which validates with our parser first)
  const r = await resolveDid(bearer.uri);
  assert.equal(r.did, bearer.uri);
});

test('our did:jwk resolves in @web5/dids to a document with our key', async () => {
  const k = deriveDeviceKeys(generateEd25519Seed());
  const did = formatDidJwk(k.edPublic);
  const res = await DidJwk.resolve(did);
  assert.equal(res.didResolutionMetadata.error, undefined);
  const jwk = res.didDocument?.verificationMethod?.[0]?.publicKeyJwk;
  assert.equal(jwk?.crv, 'Ed25519');
  assert.equal(jwk?.x, Buffer.from(k.edPublic).toString('base64url'));
});

test('did:web and did:dht offline fail with a clear DidError within the timeout', async () => {
  const t0 = Date.now();
  await assert.rejects(resolveDid('did:web:meshd.invalid', { timeoutMs: 3000 }), (e: unknown) => {
    assert.ok(e instanceof DidError);
    assert.equal(e.code, 'E_DID_RESOLVE');
    assert.match(e.message, /did:web:meshd\.invalid/);
    return true;
  });
  await assert.rejects(resolveDid('did:dht:5cahcfh3zh8bqd5cn3y6inoea1b3d6kh85rjksne9e5dcyrc1ery', { timeoutMs: 3000 }), DidError);
  await assert.rejects(resolveDid('did:foo:bar'), DidError);
  await assert.rejects(resolveDid('nonsense'), DidError);
  assert.ok(Date.now() - t0 < 8000);
});

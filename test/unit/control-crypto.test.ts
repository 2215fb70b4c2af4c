import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { deriveDeviceKeys } from '../../src/identity/keys.js';
import {
  decryptJwe,
  DecryptError,
  deriveKeyPath,
  deriveNetworkKey,
  deviceKid,
  encryptJson,
  jweEpoch,
  networkKeyPath,
  networkKid,
  x25519PublicOf,
} from '../../src/control/crypto.js';
import { Keyring } from '../../src/control/keyring.js';
import { PROTOCOL_URI } from '../../src/control/protocol.js';

const keysOf = (n: number) => deriveDeviceKeys(new Uint8Array(32).fill(n));

/** RFC 5869 HKDF-SHA-256 written out, for a 32-byte output. */
function hkdf32(ikm: Uint8Array, info: string): Buffer {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(ikm).digest(); // empty salt = HashLen zeros
  return createHmac('sha256', prk).update(Buffer.concat([Buffer.from(info), Buffer.from([1])])).digest();
}

test('key path: one HKDF-SHA-256 step per segment, empty salt, info = segment', () => {
  const root = keysOf(1).xPrivate;
  const path = networkKeyPath('bafyNetworkId', 2);
  assert.deepEqual(path, ['protocolPath', PROTOCOL_URI, 'network', 'bafyNetworkId', 'epoch', '2']);
  let k: Uint8Array = root;
  for (const seg of path) k = hkdf32(k, seg);
  assert.deepEqual(Buffer.from(deriveKeyPath(root, path)), Buffer.from(k));
  assert.deepEqual(Buffer.from(deriveNetworkKey(root, 'bafyNetworkId', 2)), Buffer.from(k));
  assert.notDeepEqual(Buffer.from(deriveNetworkKey(root, 'bafyNetworkId', 3)), Buffer.from(k));
  assert.notDeepEqual(Buffer.from(deriveNetworkKey(keysOf(2).xPrivate, 'bafyNetworkId', 2)), Buffer.from(k));
  // a deeper path extends the network key
  assert.deepEqual(Buffer.from(deriveKeyPath(root, [...path, 'aclPolicy'])), hkdf32(k, 'aclPolicy'));
});

test('JWE JSON with two recipients: each decrypts, a stranger cannot', async () => {
  const author = keysOf(1);
  const net = deriveNetworkKey(keysOf(9).xPrivate, 'n', 0);
  const bytes = await encryptJson({ hello: 'world' }, [
    { kid: networkKid(0), publicKey: x25519PublicOf(net) },
    { kid: deviceKid(author.xPublic), publicKey: author.xPublic },
  ]);
  const jwe = JSON.parse(Buffer.from(bytes).toString()) as { protected: string; recipients: { header: { alg: string; kid: string; epk: { crv: string } } }[] };
  assert.deepEqual(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString()), { enc: 'A256GCM' });
  assert.equal(jwe.recipients.length, 2);
  for (const r of jwe.recipients) {
    assert.equal(r.header.alg, 'ECDH-ES+A256KW');
    assert.equal(r.header.epk.crv, 'X25519');
  }
  assert.ok(!Buffer.from(bytes).includes('world'));
  assert.equal(jweEpoch(bytes), 0);

  const member = new Keyring(keysOf(5));
  member.addNetworkKey(0, net);
  const viaNet = await decryptJwe(bytes, member.lookup);
  assert.equal(viaNet.text, '{"hello":"world"}');
  assert.equal(viaNet.epoch, 0);
  const viaAuthor = await decryptJwe(bytes, new Keyring(author).lookup);
  assert.equal(viaAuthor.kid, deviceKid(author.xPublic));

  // a stranger holds no key it names: the network epoch is unknown to it
  await assert.rejects(decryptJwe(bytes, new Keyring(keysOf(6)).lookup), (e: unknown) => e instanceof DecryptError && e.reason === 'unknown-epoch');
  const private2 = await encryptJson({ a: 1 }, [{ kid: deviceKid(author.xPublic), publicKey: author.xPublic }]);
  await assert.rejects(decryptJwe(private2, new Keyring(keysOf(6)).lookup), (e: unknown) => e instanceof DecryptError && e.reason === 'no-key');
  const later = new Keyring(keysOf(6));
  later.addNetworkKey(1, deriveNetworkKey(keysOf(9).xPrivate, 'n', 1));
  await assert.rejects(decryptJwe(bytes, later.lookup), (e: unknown) => e instanceof DecryptError && e.reason === 'unknown-epoch' && e.epoch === 0);
  // a key that claims the right kid but is wrong
  const wrong = new Keyring(keysOf(6));
  wrong.addNetworkKey(0, keysOf(7).xPrivate);
  await assert.rejects(decryptJwe(bytes, wrong.lookup), (e: unknown) => e instanceof DecryptError && e.reason === 'failed');
});

test('the owner derives every epoch; recipientsFor names the epoch and the author', async () => {
  const owner = keysOf(1);
  const ring = Keyring.forOwner(owner, 'netid');
  assert.deepEqual(Buffer.from(ring.networkKey(4)!), Buffer.from(deriveNetworkKey(owner.xPrivate, 'netid', 4)));
  const r = ring.recipientsFor(4);
  assert.deepEqual(r.map((x) => x.kid), ['net:4', deviceKid(owner.xPublic)]);
  const bytes = await encryptJson([1, 2, 3], r);
  const device = new Keyring(keysOf(2));
  device.addNetworkKey(4, ring.networkKey(4)!);
  assert.equal((await decryptJwe(bytes, device.lookup)).text, '[1,2,3]');
});

test('tampering is detected', async () => {
  const k = keysOf(3);
  const bytes = await encryptJson({ a: 1 }, [{ kid: 'x25519:me', publicKey: k.xPublic }]);
  const ring = { lookup: (kid: string) => (kid === 'x25519:me' ? k.xPrivate : undefined) };
  const jwe = JSON.parse(Buffer.from(bytes).toString()) as Record<string, string>;
  const ct = Buffer.from(jwe.ciphertext!, 'base64url');
  ct[0]! ^= 1;
  const tampered = new TextEncoder().encode(JSON.stringify({ ...jwe, ciphertext: ct.toString('base64url') }));
  await assert.rejects(decryptJwe(tampered, ring.lookup), (e: unknown) => e instanceof DecryptError && e.reason === 'failed');
});

test('property: arbitrary bytes never decrypt and never throw anything but DecryptError', async () => {
  const ring = new Keyring(keysOf(4));
  ring.addNetworkKey(0, keysOf(8).xPrivate);
  const jweLike = fc.record({
    protected: fc.string(),
    iv: fc.string(),
    ciphertext: fc.string(),
    tag: fc.string(),
    recipients: fc.array(fc.record({ header: fc.record({ kid: fc.constantFrom('net:0', 'net:1', 'x', deviceKid(keysOf(4).xPublic)) }), encrypted_key: fc.string() }), { maxLength: 3 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), jweLike.map((o) => new TextEncoder().encode(JSON.stringify(o)))), async (bytes) => {
      try {
        await decryptJwe(bytes, ring.lookup);
        assert.fail('decrypted garbage');
      } catch (e) {
        assert.ok(e instanceof DecryptError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});

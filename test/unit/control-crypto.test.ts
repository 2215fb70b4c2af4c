import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { flattenedDecrypt } from 'jose';
import { x25519PrivateKeyObject } from '../../src/identity/keys.js';
import { deriveDeviceKeys } from '../../src/identity/keys.js';
import {
  decryptJwe,
  DecryptError,
  deriveKeyPath,
  deriveNetworkKey,
  directKid,
  encryptJson,
  JWE_BUCKETS,
  networkKeyPath,
  networkKid,
  openDirect,
  padToBucket,
  type ParsedJwe,
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

const netKey = (epoch: number) => deriveNetworkKey(keysOf(9).xPrivate, 'n', epoch);
const netRecipient = (epoch: number) => ({ kid: networkKid(x25519PublicOf(netKey(epoch))), publicKey: x25519PublicOf(netKey(epoch)) });

test('JWE JSON with two recipients: each decrypts through its own entry, a stranger cannot', async () => {
  const author = keysOf(1);
  const bytes = await encryptJson({ hello: 'world' }, [netRecipient(0), { kid: directKid(), publicKey: author.xPublic }]);
  const jwe = JSON.parse(Buffer.from(bytes).toString()) as { protected: string; recipients: { header: { alg: string; kid: string; epk: { crv: string } } }[] };
  assert.deepEqual(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString()), { enc: 'A256GCM' });
  assert.equal(jwe.recipients.length, 2);
  for (const r of jwe.recipients) {
    assert.equal(r.header.alg, 'ECDH-ES+A256KW');
    assert.equal(r.header.epk.crv, 'X25519');
  }
  assert.ok(!Buffer.from(bytes).includes('world'));

  const member = new Keyring(keysOf(5));
  member.addNetworkKey(0, netKey(0));
  const viaNet = await decryptJwe(bytes, member, 'network');
  assert.equal(viaNet.text.trimEnd(), '{"hello":"world"}');
  assert.equal(viaNet.epoch, 0);
  assert.equal(viaNet.via, 'network');
  const viaAuthor = await decryptJwe(bytes, new Keyring(author), 'network-or-direct');
  assert.equal(viaAuthor.via, 'direct');
  // the author may not read it as a member would without the network key
  await assert.rejects(decryptJwe(bytes, new Keyring(author), 'network'), (e: unknown) => e instanceof DecryptError && e.reason === 'unknown-key');

  // a stranger holds no key it names
  await assert.rejects(decryptJwe(bytes, new Keyring(keysOf(6)), 'network-or-direct'), (e: unknown) => e instanceof DecryptError && e.reason === 'unknown-key');
  const private2 = await encryptJson({ a: 1 }, [{ kid: directKid(), publicKey: author.xPublic }]);
  await assert.rejects(decryptJwe(private2, new Keyring(keysOf(6)), 'direct'), (e: unknown) => e instanceof DecryptError && e.reason === 'no-key');
  await assert.rejects(decryptJwe(private2, new Keyring(author), 'network'), (e: unknown) => e instanceof DecryptError && e.reason === 'no-key');
  const later = new Keyring(keysOf(6));
  later.addNetworkKey(1, netKey(1));
  await assert.rejects(decryptJwe(bytes, later, 'network'), (e: unknown) => e instanceof DecryptError && e.reason === 'unknown-key');
  // a key filed under the right kid that does not open the entry
  const wrong = { selfPrivate: keysOf(6).xPrivate, network: () => ({ epoch: 0, key: keysOf(7).xPrivate }) };
  await assert.rejects(decryptJwe(bytes, wrong, 'network'), (e: unknown) => e instanceof DecryptError && e.reason === 'failed');
});

test('kids name no key, device or epoch; stored sizes fall in buckets', async () => {
  const author = keysOf(1);
  const sizes = new Set<number>();
  for (const n of [0, 10, 100, 300, 700, 2000, 5000]) {
    const bytes = await encryptJson({ pad: 'x'.repeat(n) }, [netRecipient(3), { kid: directKid(), publicKey: author.xPublic }]);
    assert.ok((JWE_BUCKETS as readonly number[]).includes(bytes.length), `JWE of ${bytes.length} bytes is not a bucket size`);
    sizes.add(bytes.length);
    const text = Buffer.from(bytes).toString();
    for (const key of [author.xPublic, x25519PublicOf(netKey(3))]) {
      for (const enc of ['base64', 'base64url', 'hex'] as const) assert.ok(!text.includes(Buffer.from(key).toString(enc).slice(0, 20)), `a public key in clear (${enc})`);
    }
    assert.ok(!/"kid":"(net|x25519):/.test(text) && !text.includes('"epoch"'));
    const ring = new Keyring(keysOf(5));
    ring.addNetworkKey(3, netKey(3));
    assert.equal(JSON.parse((await decryptJwe(bytes, ring, 'network')).text).pad.length, n);
  }
  assert.ok(sizes.size <= 4, `${sizes.size} distinct sizes for 7 records`);
  // plaintext is padded too: the ciphertext length does not follow the content byte for byte
  const a = await encryptJson({ v: 'a' }, [netRecipient(0)]);
  const b = await encryptJson({ v: 'a'.repeat(100) }, [netRecipient(0)]);
  const ct = (x: Uint8Array) => (JSON.parse(Buffer.from(x).toString()) as { ciphertext: string }).ciphertext.length;
  assert.equal(ct(a), ct(b));
  assert.equal(padToBucket('abc', [4, 8]), 'abc ');
});

test('a member-readable record opens only through its one network entry: no reader sees other data', async () => {
  const owner = keysOf(2);
  const honest = JSON.parse(Buffer.from(await encryptJson({ v: 'for-everyone' }, [netRecipient(0), { kid: directKid(), publicKey: owner.xPublic }])).toString());
  const other = JSON.parse(Buffer.from(await encryptJson({ v: 'for-the-owner' }, [{ kid: directKid(), publicKey: owner.xPublic }])).toString());
  // the writer swaps in an owner entry from another JWE: that entry wraps another content key
  honest.recipients[1] = other.recipients[0];
  const bytes = new TextEncoder().encode(JSON.stringify(honest));
  const memberRing = new Keyring(keysOf(5));
  memberRing.addNetworkKey(0, netKey(0));
  const seen = new Keyring(owner);
  seen.addNetworkKey(0, netKey(0));
  assert.equal(JSON.parse((await decryptJwe(bytes, memberRing, 'network')).text).v, 'for-everyone');
  assert.equal(JSON.parse((await decryptJwe(bytes, seen, 'network')).text).v, 'for-everyone');
  await assert.rejects(decryptJwe(bytes, seen, 'direct'));
  // two network entries could wrap two content keys: refused outright
  honest.recipients[1] = { ...honest.recipients[0] };
  await assert.rejects(decryptJwe(new TextEncoder().encode(JSON.stringify(honest)), memberRing, 'network'), (e: unknown) => e instanceof DecryptError && e.reason === 'malformed');
});

test('the owner derives every epoch and maps a kid to its epoch; recipientsFor names the network key and the author', async () => {
  const owner = keysOf(1);
  const ring = Keyring.forOwner(owner, 'netid');
  assert.deepEqual(Buffer.from(ring.networkKey(4)!), Buffer.from(deriveNetworkKey(owner.xPrivate, 'netid', 4)));
  const r = ring.recipientsFor(4);
  assert.equal(r[0]!.kid, networkKid(x25519PublicOf(deriveNetworkKey(owner.xPrivate, 'netid', 4))));
  assert.match(r[1]!.kid, /^d:[A-Za-z0-9_-]{22}$/);
  const bytes = await encryptJson([1, 2, 3], r);
  const device = new Keyring(keysOf(2));
  device.addNetworkKey(4, ring.networkKey(4)!);
  assert.equal((await decryptJwe(bytes, device, 'network')).text.trimEnd(), '[1,2,3]');
  // a fresh owner keyring finds epoch 6 once told the network is at 5 (a few epochs ahead)
  const fresh = Keyring.forOwner(owner, 'netid');
  const kid6 = networkKid(x25519PublicOf(deriveNetworkKey(owner.xPrivate, 'netid', 6)));
  fresh.noteEpoch(5);
  assert.equal(fresh.network(kid6)?.epoch, 6);
  // but an arbitrary kid does not make it derive without bound
  assert.equal(fresh.network('n:AAAAAAAAAAAAAAAAAAAAAA'), undefined);
  assert.ok(fresh.highestEpoch() <= 9);
});

test('tampering is detected', async () => {
  const k = keysOf(3);
  const bytes = await encryptJson({ a: 1 }, [{ kid: directKid(), publicKey: k.xPublic }]);
  const jwe = JSON.parse(Buffer.from(bytes).toString()) as Record<string, string>;
  const ct = Buffer.from(jwe.ciphertext!, 'base64url');
  ct[0]! ^= 1;
  const tampered = new TextEncoder().encode(JSON.stringify({ ...jwe, ciphertext: ct.toString('base64url') }));
  await assert.rejects(decryptJwe(tampered, new Keyring(k), 'direct'), (e: unknown) => e instanceof DecryptError && e.reason === 'no-key');
});

test('property: arbitrary bytes never decrypt and never throw anything but DecryptError', async () => {
  const ring = new Keyring(keysOf(4));
  ring.addNetworkKey(0, netKey(0));
  const jweLike = fc.record({
    protected: fc.string(),
    iv: fc.string(),
    ciphertext: fc.string(),
    tag: fc.string(),
    recipients: fc.array(fc.record({ header: fc.record({ kid: fc.constantFrom(netRecipient(0).kid, 'n:x', 'd:x', 'x') }), encrypted_key: fc.string() }), { maxLength: 3 }),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.uint8Array({ maxLength: 300 }), jweLike.map((o) => new TextEncoder().encode(JSON.stringify(o)))),
      fc.constantFrom('network' as const, 'direct' as const, 'network-or-direct' as const),
      async (bytes, via) => {
        try {
          await decryptJwe(bytes, ring, via);
          assert.fail('decrypted garbage');
        } catch (e) {
          assert.ok(e instanceof DecryptError, String(e));
        }
      },
    ),
    { numRuns: 500 },
  );
});

test("the direct path (node:crypto alone) opens what meshd writes as jose does, and refuses what jose refuses", async () => {
  const k = keysOf(5);
  const other = keysOf(6);
  const viaJose = async (jwe: ParsedJwe, i: number, key: Uint8Array): Promise<string> => {
    const { recipients, ...rest } = jwe;
    const r = recipients[i]!;
    const out = await flattenedDecrypt({ ...rest, ...(r.header ? { header: r.header } : {}), ...(r.encrypted_key ? { encrypted_key: r.encrypted_key } : {}) } as Parameters<typeof flattenedDecrypt>[0], x25519PrivateKeyObject(key));
    return Buffer.from(out.plaintext).toString('utf8');
  };
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), fc.nat(), fc.constantFrom('ciphertext', 'tag', 'iv', 'protected', 'encrypted_key', 'epk'), async (value, flip, field) => {
      const bytes = await encryptJson(value, [{ kid: directKid(), publicKey: other.xPublic }, { kid: directKid(), publicKey: k.xPublic }]);
      const jwe = JSON.parse(Buffer.from(bytes).toString()) as ParsedJwe;
      const direct = openDirect(jwe, jwe.recipients[1]!, k.xPrivate);
      assert.notEqual(direct, undefined, 'meshd’s own entries take the direct path');
      assert.equal(direct, await viaJose(jwe, 1, k.xPrivate));
      assert.deepEqual(JSON.parse(direct!), JSON.parse(JSON.stringify(value)));
      assert.throws(() => openDirect(jwe, jwe.recipients[0]!, k.xPrivate), 'another device’s entry does not open');
      // one bit flipped anywhere that matters: both refuse
      const t = structuredClone(jwe) as ParsedJwe & Record<string, unknown>;
      const r = t.recipients[1]! as { header: Record<string, unknown>; encrypted_key: string };
      const flipIn = (b64: string): string => {
        const b = Buffer.from(b64, 'base64url');
        b[flip % b.length]! ^= 1 << (flip % 8);
        return b.toString('base64url');
      };
      if (field === 'encrypted_key') r.encrypted_key = flipIn(r.encrypted_key);
      else if (field === 'epk') (r.header.epk as { x: string }).x = flipIn((r.header.epk as { x: string }).x);
      else t[field] = flipIn(t[field] as string);
      let directOk: boolean;
      try {
        directOk = openDirect(t, t.recipients[1]!, k.xPrivate) === direct;
      } catch {
        directOk = false;
      }
      const joseOk = await viaJose(t, 1, k.xPrivate).then(
        (x) => x === direct,
        () => false,
      );
      assert.equal(directOk, joseOk, `tampered ${field}: direct and jose agree`);
    }),
    { numRuns: 150 },
  );
});

/**
 * Record verification through node:crypto: records the SDK writes verify; every kind of
 * tampering is refused with E_RECORD_INVALID; arbitrary mutations never throw anything else,
 * and nothing the new path accepts is refused by the SDK's own checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { authenticate, Message, RecordsWrite, Time, type RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { DidJwk, DidResolverCacheNoop, UniversalResolver } from '@web5/dids';
import { MeshdError } from '../../src/errors.js';
import { isDwnTimestamp, verifyRecordsWriteMessage } from '../../src/dwn/verify.js';
import { deviceSigner, type DeviceIdentity } from '../../src/dwn/signer.js';
import { ed25519PublicFromSeed, ed25519Sign, generateEd25519Seed } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { PROTOCOL_URI } from '../../src/control/protocol.js';

function identity(): DeviceIdentity {
  const edSeed = generateEd25519Seed();
  return { did: formatDidJwk(ed25519PublicFromSeed(edSeed)), edSeed };
}

const alice = identity();
const mallory = identity();

async function write(id: DeviceIdentity, extra: Partial<Parameters<typeof RecordsWrite.create>[0]> = {}): Promise<RecordsWriteMessage> {
  const w = await RecordsWrite.create({
    protocol: PROTOCOL_URI,
    protocolPath: 'network',
    data: new TextEncoder().encode('hello mesh'),
    dataFormat: 'application/octet-stream',
    signer: deviceSigner(id),
    ...extra,
  });
  return w.message;
}

const clone = (m: RecordsWriteMessage): RecordsWriteMessage => structuredClone(m);
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const unb64 = (s: string): Record<string, unknown> => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>;

function flipChar(s: string, i: number): string {
  const c = s[i]!;
  return s.slice(0, i) + (c === 'A' ? 'B' : 'A') + s.slice(i + 1);
}

async function rejects(m: unknown, why?: RegExp): Promise<void> {
  await assert.rejects(verifyRecordsWriteMessage(m as RecordsWriteMessage), (e: unknown) => {
    assert.ok(e instanceof MeshdError, `not a MeshdError: ${String(e)}`);
    assert.equal(e.code, 'E_RECORD_INVALID');
    if (why) assert.match(e.message, why);
    return true;
  });
}

/** Re-sign the message's signature entry with `signer`'s key under the given protected header. */
function resign(m: RecordsWriteMessage, header: Record<string, unknown>, signer: DeviceIdentity): void {
  const sig = m.authorization.signature;
  const protectedB64 = b64(header);
  const signature = ed25519Sign(signer.edSeed, Buffer.from(`${protectedB64}.${sig.payload}`));
  sig.signatures[0] = { protected: protectedB64, signature: Buffer.from(signature).toString('base64url') };
}

const SDK_RESOLVER = new UniversalResolver({ didResolvers: [DidJwk], cache: DidResolverCacheNoop });
/** The checks as the SDK makes them (the previous implementation). */
async function sdkAccepts(m: RecordsWriteMessage): Promise<boolean> {
  try {
    await RecordsWrite.parse(m);
    await authenticate(m.authorization, SDK_RESOLVER);
    return Message.getAuthor(m) !== undefined;
  } catch {
    return false;
  }
}

test('a record written by the SDK verifies and names its author', async () => {
  const m = await write(alice);
  assert.equal(await verifyRecordsWriteMessage(m), alice.did);
  // the protected header is what the SDK writes for meshd's signer
  assert.deepEqual(unb64(m.authorization.signature.signatures[0]!.protected), { kid: `${alice.did}#0`, alg: 'EdDSA' });
});

test('an update (not the initial write) and a child record verify', async () => {
  const first = await write(alice);
  const update = await write(alice, { recordId: first.recordId, dateCreated: first.descriptor.dateCreated, data: new Uint8Array([1, 2, 3]) });
  assert.notEqual(update.descriptor.messageTimestamp, update.descriptor.dateCreated);
  assert.equal(await verifyRecordsWriteMessage(update), alice.did);
  const child = await write(alice, { protocolPath: 'network/device', parentContextId: first.contextId! });
  assert.equal(await verifyRecordsWriteMessage(child), alice.did);
});

test('flipped bytes in the signature, payload or protected header are refused', async () => {
  const m = await write(alice);
  const sig = m.authorization.signature;
  for (let i = 0; i < sig.signatures[0]!.signature.length - 1; i += 17) {
    const x = clone(m);
    x.authorization.signature.signatures[0]!.signature = flipChar(sig.signatures[0]!.signature, i);
    await rejects(x);
  }
  for (let i = 0; i < sig.payload.length - 1; i += 23) {
    const x = clone(m);
    x.authorization.signature.payload = flipChar(sig.payload, i);
    await rejects(x);
  }
  const x = clone(m);
  x.authorization.signature.signatures[0]!.protected = flipChar(sig.signatures[0]!.protected, 10);
  await rejects(x);
});

test('a changed descriptor is refused', async () => {
  const m = await write(alice);
  const size = clone(m);
  size.descriptor.dataSize += 1;
  await rejects(size, /descriptorCid/);
  const cid = clone(m);
  cid.descriptor.dataCid = flipChar(cid.descriptor.dataCid, 20);
  await rejects(cid, /descriptorCid/);
  const path = clone(m);
  path.descriptor.protocolPath = 'network/device';
  await rejects(path, /descriptorCid/);
});

test("a different author's key is refused", async () => {
  const m = await write(alice);
  const x = clone(m);
  resign(x, { kid: `${alice.did}#0`, alg: 'EdDSA' }, mallory);
  await rejects(x, /signature verification failed/);
  // mallory's own kid over alice's payload: a valid signature, but the recordId names alice's entry
  // and the record is not mallory's initial write; the SDK treats it as an update by mallory.
  const y = clone(m);
  resign(y, { kid: `${mallory.did}#0`, alg: 'EdDSA' }, mallory);
  assert.equal(await sdkAccepts(y), true);
  assert.equal(await verifyRecordsWriteMessage(y), mallory.did);
});

test('a wrong kid or alg is refused', async () => {
  const m = await write(alice);
  const headers: Record<string, unknown>[] = [
    { kid: `${alice.did}#1`, alg: 'EdDSA' },
    { kid: alice.did, alg: 'EdDSA' },
    { kid: `#0`, alg: 'EdDSA' },
    { kid: `did:example:123#0`, alg: 'EdDSA' },
    { kid: `${alice.did}#${alice.did}#0`, alg: 'EdDSA' },
    { kid: `${alice.did}#0`, alg: 'ES256K' },
    { kid: `${alice.did}#0` },
    { alg: 'EdDSA' },
  ];
  for (const h of headers) {
    const x = clone(m);
    resign(x, h, alice);
    await rejects(x);
  }
});

test('a recordId or contextId that does not match is refused', async () => {
  const m = await write(alice);
  const other = await write(alice, { data: new Uint8Array([9]) });
  const x = clone(m);
  x.recordId = other.recordId;
  await rejects(x, /recordId/);
  const y = clone(m);
  y.contextId = other.contextId!;
  await rejects(y, /contextId/);
  const z = clone(m);
  delete z.contextId;
  await rejects(z, /contextId/);
});

test('structure: several signatures, delegated grants, extra payload members, wrong interface', async () => {
  const m = await write(alice);
  const two = clone(m);
  two.authorization.signature.signatures.push(m.authorization.signature.signatures[0]!);
  await rejects(two, /exactly one signature/);
  const grant = clone(m) as RecordsWriteMessage & { authorization: Record<string, unknown> };
  grant.authorization.authorDelegatedGrant = { ...clone(m), encodedData: "" };
  await rejects(grant, /delegated grant/);
  const notWrite = clone(m);
  (notWrite.descriptor as unknown as Record<string, unknown>).method = 'Delete';
  await rejects(notWrite);
  for (const bad of [null, 42, 'x', [], {}, { descriptor: {} }, { ...clone(m), authorization: undefined }]) await rejects(bad);
});

test('an owner signature is verified too', async () => {
  const m = await write(alice);
  const w = await RecordsWrite.parse(m);
  await w.signAsOwner(deviceSigner(mallory));
  const owned = w.message;
  assert.ok(owned.authorization.ownerSignature);
  assert.equal(await verifyRecordsWriteMessage(owned), alice.did);
  const bad = clone(owned);
  bad.authorization.ownerSignature!.signatures[0]!.signature = flipChar(bad.authorization.ownerSignature!.signatures[0]!.signature, 5);
  await rejects(bad, /signature verification failed/);
});

/** Every path to a leaf (or container) of a JSON value. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...prefix, i])));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  return out;
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) {
    const next = o[k];
    if (typeof next !== 'object' || next === null) return root; // an earlier mutation removed the path
    o = next as Record<string | number, unknown>;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete o[last];
  else o[last] = value;
  return root;
}

test('property: mutated messages only ever fail with MeshdError, and nothing accepted is refused by the SDK', async () => {
  const base = await write(alice, { tags: { n: 1 } });
  const basePaths = paths(base);
  const mutation = fc.record({
    path: fc.constantFrom(...basePaths),
    kind: fc.constantFrom('replace', 'flip', 'delete', 'swap-author'),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined), fc.string({ maxLength: 12 })),
    index: fc.nat(),
  });
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
      let m: unknown = clone(base);
      for (const mu of mutations) {
        const cur = mu.path.reduce<unknown>((o, k) => (typeof o === 'object' && o !== null ? (o as Record<string | number, unknown>)[k] : undefined), m);
        if (mu.kind === 'flip' && typeof cur === 'string' && cur.length > 0) m = setAt(m, mu.path, flipChar(cur, mu.index % cur.length));
        else if (mu.kind === 'delete') m = setAt(m, mu.path, undefined);
        else if (mu.kind === 'swap-author' && typeof cur === 'string') m = setAt(m, mu.path, cur.split(alice.did).join(mallory.did));
        else m = setAt(m, mu.path, mu.value);
        if (typeof m !== 'object' || m === null) break;
      }
      let ok = false;
      try {
        await verifyRecordsWriteMessage(m as RecordsWriteMessage);
        ok = true;
      } catch (e) {
        assert.ok(e instanceof MeshdError && e.code === 'E_RECORD_INVALID', `threw ${String(e)}`);
      }
      if (ok) {
        accepted++;
        assert.equal(await sdkAccepts(m as RecordsWriteMessage), true, `accepted but the SDK refuses: ${JSON.stringify(m)}`);
      }
    }),
    { numRuns: 300 },
  );
  // mutations of unsigned members (e.g. a tag value) leave some messages valid
  assert.ok(accepted > 0, 'no mutated message was accepted: the property only exercised refusals');
});

function sdkTimestampOk(s: string): boolean {
  try {
    Time.validateTimestamp(s);
    return true;
  } catch {
    return false;
  }
}

test('property: timestamps accepted are ones the SDK accepts; the SDK\'s own are accepted', () => {
  assert.equal(isDwnTimestamp(Time.getCurrentTimestamp()), true);
  for (const bad of ['2024-02-30T00:00:00.000000Z', '2023-02-29T00:00:00.000000Z', '2024-01-01T24:00:00.000000Z', '2024-13-01T00:00:00.000000Z', '2024-00-10T00:00:00.000000Z', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000000+01:00', 'x']) {
    assert.equal(isDwnTimestamp(bad), false, bad);
  }
  assert.equal(isDwnTimestamp('2024-02-29T23:59:60.123456Z'), true);
  const digits = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: n, maxLength: n });
  fc.assert(
    fc.property(digits(4), digits(2), digits(2), digits(2), digits(2), digits(2), digits(6), (y, mo, d, h, mi, s, us) => {
      const t = `${y}-${mo}-${d}T${h}:${mi}:${s}.${us}Z`;
      if (isDwnTimestamp(t)) assert.equal(sdkTimestampOk(t), true, t);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), fc.nat(999), (date, micro) => {
      const t = date.toISOString().replace(/Z$/, `${String(micro).padStart(3, '0')}Z`);
      if (!t.startsWith('+') && !t.startsWith('-')) assert.equal(isDwnTimestamp(t), true, t);
    }),
  );
});

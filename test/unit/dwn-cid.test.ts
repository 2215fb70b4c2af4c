/**
 * The fast DAG-CBOR encoder and CID printer of dwn/cid.ts give exactly the bytes and strings of
 * @ipld/dag-cbor and multiformats, on DWN-like descriptors and on random JSON values (seeded),
 * and hand everything else to dag-cbor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { cidV1String, computeCidSync, computeDataCidSync, encodeDagCbor, encodeJsonDagCbor } from '../../src/dwn/cid.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -256, -257, -65536, -65537, -(2 ** 32), -(2 ** 32) - 1, Number.MIN_SAFE_INTEGER];

function randomString(r: () => number, ascii: boolean): string {
  const n = Math.floor(r() * 40) + (r() < 0.1 ? 300 : 0);
  let s = '';
  for (let i = 0; i < n; i++) s += ascii ? String.fromCharCode(Math.floor(r() * 128)) : String.fromCodePoint(Math.floor(r() * 0x2ffff) % 0xd800);
  return s;
}

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 5 : 7));
  switch (k) {
    case 0:
      return INTS[Math.floor(r() * INTS.length)]!;
    case 1:
      return Math.floor((r() - 0.5) * 2 ** Math.floor(r() * 53));
    case 2:
      return randomString(r, r() < 0.9);
    case 3:
      return r() < 0.5;
    case 4:
      return r() < 0.8 ? null : r() * 1000; // floats: dag-cbor's own answer
    case 5:
      return Array.from({ length: Math.floor(r() * 6) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 8);
      for (let i = 0; i < n; i++) o[r() < 0.3 ? randomString(r, r() < 0.9).slice(0, 4) : randomString(r, r() < 0.95)] = randomValue(r, depth + 1);
      return o;
    }
  }
}

const descriptor = {
  interface: 'Records',
  method: 'Write',
  protocol: 'https://meshd.dev/protocols/wireguard-mesh/v1',
  protocolPath: 'network/node/endpoint',
  recipient: 'did:jwk:eyJjcnYiOiJFZDI1NTE5Iiwia3R5IjoiT0tQIiwieCI6IjEyMyJ9',
  schema: 'https://meshd.dev/schemas/endpoint',
  tags: { bucket: 2, epoch: 7 },
  parentId: 'bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
  dataCid: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
  dataSize: 1234,
  dateCreated: '2026-11-29T23:00:00.000000Z',
  messageTimestamp: '2026-11-29T23:04:00.000000Z',
  dataFormat: 'application/jwe+json',
};

test('descriptors and entry-id inputs encode to dag-cbor bytes and CIDs', () => {
  for (const v of [descriptor, { ...descriptor, author: 'did:jwk:abc' }, { interface: 'Records', method: 'Subscribe', filter: { protocol: 'x', contextId: 'a/b' } }, {}, []]) {
    assert.deepEqual(encodeJsonDagCbor(v), dagCbor.encode(v));
    assert.equal(computeCidSync(v), CID.createV1(dagCbor.code, createDigest(0x12, createHash('sha256').update(dagCbor.encode(v)).digest())).toString());
  }
});

test('random JSON values: the same bytes as dag-cbor, or handed to it', () => {
  const r = rng(20261129);
  let fast = 0;
  for (let i = 0; i < 3000; i++) {
    const v = randomValue(r, 0);
    let want: Uint8Array | Error;
    try {
      want = dagCbor.encode(v);
    } catch (e) {
      want = e as Error;
    }
    const got = encodeJsonDagCbor(v);
    if (got !== undefined) {
      fast++;
      assert.ok(!(want instanceof Error), `dag-cbor refuses what the fast encoder took: ${JSON.stringify(v)}`);
      assert.deepEqual(Buffer.from(got).toString('hex'), Buffer.from(want).toString('hex'), `value ${i}: ${JSON.stringify(v)}`);
    }
    // whichever encoder runs, encodeDagCbor answers as dag-cbor does
    if (want instanceof Error) assert.throws(() => encodeDagCbor(v));
    else assert.deepEqual(Buffer.from(encodeDagCbor(v)).toString('hex'), Buffer.from(want).toString('hex'));
  }
  assert.ok(fast > 1500, `only ${fast} of 3000 took the fast path`);
});

test('what the fast encoder does not take goes to dag-cbor', () => {
  for (const v of [1.5, -0, 2 ** 53, 'é', { é: 1 }, { a: undefined }, [undefined], new Uint8Array([1, 2]), new Map([['a', 1]]), 10n]) {
    assert.equal(encodeJsonDagCbor(v), undefined, String(v));
  }
  assert.deepEqual(encodeDagCbor({ a: 1.5, b: 'é' }), dagCbor.encode({ a: 1.5, b: 'é' }));
  assert.throws(() => encodeDagCbor({ a: undefined }), /DAG-CBOR/);
  const deep: unknown[] = [];
  let cur = deep;
  for (let i = 0; i < 40; i++) cur.push((cur = []));
  assert.deepEqual(encodeDagCbor(deep), dagCbor.encode(deep));
});

test('CID strings as multiformats prints them', () => {
  const r = rng(7);
  for (let i = 0; i < 200; i++) {
    const digest = new Uint8Array(32).map(() => Math.floor(r() * 256));
    for (const codec of [0x71, 0x55]) assert.equal(cidV1String(codec, digest), CID.createV1(codec, createDigest(0x12, digest)).toString());
  }
  const data = new TextEncoder().encode('hello');
  assert.equal(computeDataCidSync(data), CID.createV1(0x55, createDigest(0x12, createHash('sha256').update(data).digest())).toString());
});

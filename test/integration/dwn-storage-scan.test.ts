/**
 * The storage scan (test/helpers/dwn-storage-scan.ts) against a real dwn-server: a record
 * written through src/dwn/client.ts is found at rest — its index columns, tags, author,
 * recipient and data size, its data blob — and markers are found in each encoding they were
 * stored in, while a marker that was never written is not found anywhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ProtocolDefinition } from '@tbd54566975/dwn-sdk-js';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { findOccurrences, needleForms, scanDwnStorage } from '../helpers/dwn-storage-scan.js';
import { DwnClient } from '../../src/dwn/client.js';
import type { DeviceIdentity } from '../../src/dwn/signer.js';
import { deriveDeviceKeys, generateEd25519Seed } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';

const PROTOCOL = 'https://scan-test.invalid/protocols/notes/v1';
const definition: ProtocolDefinition = {
  protocol: PROTOCOL,
  published: true,
  types: { note: {} },
  structure: { note: { $tags: { $allowUndefinedTags: true } } },
};

function newIdentity(): DeviceIdentity {
  const seed = generateEd25519Seed();
  return { did: formatDidJwk(deriveDeviceKeys(seed).edPublic), edSeed: seed };
}

let dwn: TestDwn;
const alice = newIdentity();
const bob = newIdentity();
let client: DwnClient;

before(async () => {
  dwn = await startTestDwn();
  client = new DwnClient(dwn.url, alice.did, alice);
  await client.configureProtocol(definition);
});

after(async () => {
  await dwn?.stop();
});

describe('dwn storage scan', () => {
  test('base64 fragments cover every alignment', () => {
    const secret = randomBytes(20);
    for (let k = 0; k < 3; k++) {
      const embedded = Buffer.concat([randomBytes(k + 3), secret, randomBytes(2)]);
      for (const enc of ['base64', 'base64url'] as const) {
        const text = Buffer.from(embedded.toString(enc));
        assert.ok(
          needleForms(secret).some((f) => f.encoding === enc && text.includes(f.pattern)),
          `${enc} at alignment ${k}`,
        );
      }
    }
  });

  test('finds a written record, its metadata, its data and markers in every encoding', async () => {
    const rawMarker = `raw-marker-${randomBytes(6).toString('hex')}`;
    const b64Secret = randomBytes(24); // stored base64url-encoded inside the data
    const hexSecret = randomBytes(16); // stored hex-encoded inside the data
    const tagMarker = `tag-marker-${randomBytes(4).toString('hex')}`;
    const bigSecret = randomBytes(40); // inside a blob too large to be kept inline
    const never = randomBytes(24);

    const small = Buffer.from(JSON.stringify({ note: rawMarker, k: `x${b64Secret.toString('base64url')}`, h: hexSecret.toString('hex') }));
    const w = await client.write({
      protocol: PROTOCOL,
      protocolPath: 'note',
      data: new Uint8Array(small),
      dataFormat: 'application/json',
      recipient: bob.did,
      tags: { label: tagMarker },
    });
    const big = Buffer.concat([randomBytes(40_000), bigSecret, randomBytes(100)]);
    const wBig = await client.write({ protocol: PROTOCOL, protocolPath: 'note', data: new Uint8Array(big), dataFormat: 'application/octet-stream' });

    const scan = scanDwnStorage(dwn.dataDir);
    assert.ok(scan.database, 'the SQLite store was found');
    assert.ok(scan.tables.includes('messageStoreMessages') && scan.tables.includes('dataStore'), `tables: ${scan.tables.join(', ')}`);

    const stored = scan.messages.find((m) => m.store === 'messages' && m.recordId === w.recordId && m.method === 'Write');
    assert.ok(stored, 'the RecordsWrite is stored');
    assert.equal(stored.author, alice.did);
    assert.equal(stored.recipient, bob.did);
    assert.equal(stored.protocolPath, 'note');
    assert.equal(stored.dataSize, small.length);
    assert.deepEqual(stored.tags, { label: tagMarker });
    const descriptor = stored.message?.descriptor as { tags?: Record<string, unknown>; recipient?: string } | undefined;
    assert.deepEqual(descriptor?.tags, { label: tagMarker }, 'the decoded message carries the tags');
    assert.equal(descriptor?.recipient, bob.did);
    assert.equal(Buffer.from(stored.encodedData ?? new Uint8Array()).toString(), small.toString(), 'small data is kept inline');
    assert.ok(scan.messages.some((m) => m.store === 'events' && m.recordId === w.recordId), 'the event log indexes it too');

    const blob = scan.data.find((d) => d.recordId === wBig.recordId);
    assert.ok(blob, 'the large record has a data blob');
    assert.ok(Buffer.from(blob.bytes).equals(big), 'its bytes are the data as written');

    const found = findOccurrences(scan, [
      { label: 'raw', bytes: rawMarker },
      { label: 'b64', bytes: b64Secret },
      { label: 'hex', bytes: hexSecret },
      { label: 'tag', bytes: tagMarker },
      { label: 'big', bytes: bigSecret },
      { label: 'never', bytes: never },
    ]);
    const where = (label: string) => found.filter((o) => o.label === label);
    assert.ok(where('raw').some((o) => o.encoding === 'raw' && o.where === 'encodedData' && o.recordId === w.recordId), 'raw marker in the inline data');
    assert.ok(where('raw').some((o) => o.encoding === 'base64url' && o.where === 'encodedData' && o.field === 'encodedData'), 'and base64url in the stored column');
    assert.ok(where('b64').some((o) => o.encoding === 'base64url' && o.where === 'encodedData' && o.field === 'decoded'), 'base64url-encoded secret');
    assert.ok(where('hex').some((o) => o.encoding === 'hex'), 'hex-encoded secret');
    assert.ok(where('tag').some((o) => o.where === 'column' && o.field === 'tag:label'), 'tag in the tags table');
    assert.ok(where('tag').some((o) => o.where === 'message' && o.encoding === 'raw'), 'tag in the stored message');
    assert.ok(where('big').some((o) => o.where === 'data' && o.encoding === 'raw' && o.recordId === wBig.recordId), 'secret in the data blob');
    assert.ok(where('raw').some((o) => o.where === 'file' && o.field?.startsWith('dwn.db')), 'and in the raw database file');
    assert.deepEqual(where('never'), [], 'a needle never written is not found');
  });
});

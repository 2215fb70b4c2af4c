/**
 * The man-in-the-middle DWN proxy (test/helpers/dwn-proxy.ts) in front of a real dwn-server:
 * traffic passes both ways, every request is counted by author and method, a replayed older
 * record version is what one client receives (while another still sees the current one), a
 * filtered entry is absent, and subscriptions work through it (with events dropped on demand).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolDefinition, RecordEvent } from '@tbd54566975/dwn-sdk-js';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { DwnProxy, diffCounters, filterEntriesHook, replayHook } from '../helpers/dwn-proxy.js';
import { DwnClient } from '../../src/dwn/client.js';
import { DwnSubscriber, type SubscriberStatus } from '../../src/dwn/subscriber.js';
import type { DeviceIdentity } from '../../src/dwn/signer.js';
import { deriveDeviceKeys, generateEd25519Seed } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';

const PROTOCOL = 'https://proxy-test.invalid/protocols/notes/v1';
const definition: ProtocolDefinition = {
  protocol: PROTOCOL,
  published: true,
  types: { note: { dataFormats: ['application/octet-stream'] } },
  structure: { note: {} },
};

function newIdentity(): DeviceIdentity {
  const seed = generateEd25519Seed();
  return { did: formatDidJwk(deriveDeviceKeys(seed).edPublic), edSeed: seed };
}

const bytes = (s: string) => new Uint8Array(Buffer.from(s));
const text = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');

const idOf = (e: RecordEvent): string | undefined => (e.message as { recordId?: string }).recordId;

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let dwn: TestDwn;
let proxy: DwnProxy;
const alice = newIdentity(); // the tenant
const bob = newIdentity(); // a reader: recipient of alice's notes
let aliceC: DwnClient;
let bobC: DwnClient;

before(async () => {
  dwn = await startTestDwn();
  proxy = await DwnProxy.start({ upstream: dwn.url });
  aliceC = new DwnClient(proxy.url, alice.did, alice);
  bobC = new DwnClient(proxy.url, alice.did, bob);
  await aliceC.configureProtocol(definition);
});

after(async () => {
  await proxy?.close();
  await dwn?.stop();
});

const write = (data: string, extra: { recordId?: string; dateCreated?: string } = {}) =>
  aliceC.write({ protocol: PROTOCOL, protocolPath: 'note', data: bytes(data), dataFormat: 'application/octet-stream', recipient: bob.did, ...extra });
const queryNotes = (c: DwnClient) => c.query({ protocol: PROTOCOL, protocolPath: 'note' });

describe('dwn proxy', () => {
  test('forwards traffic and counts requests per author and per method', async () => {
    const before = proxy.counters();
    const w = await write('hello');
    const q = await queryNotes(aliceC);
    assert.ok(q.some((e) => e.recordId === w.recordId), 'the written record comes back through the proxy');
    const r = await bobC.read(w.recordId);
    assert.equal(text(r?.data), 'hello', 'RecordsRead data (HTTP body) passes through');
    // a non-DWN route passes too
    const health = await fetch(new URL('/health', proxy.url));
    assert.equal(health.status, 200);

    const d = diffCounters(before, proxy.counters());
    assert.equal(d.total, 3);
    assert.deepEqual(d.byAuthorMethod, { [alice.did]: { RecordsWrite: 1, RecordsQuery: 1 }, [bob.did]: { RecordsRead: 1 } });
    assert.equal(d.byAuthor[alice.did], 2);
    assert.equal(d.byMethod.RecordsRead, 1);
    const last = proxy.requests().at(-1)!;
    assert.equal(last.dwnMethod, 'RecordsRead');
    assert.equal(last.author, bob.did);
    assert.equal(last.target, alice.did);
    assert.equal(last.recordId, w.recordId);
    const wr = proxy.requests((x) => x.dwnMethod === 'RecordsWrite').at(-1)!;
    assert.equal(wr.protocolPath, 'note');
    assert.equal(wr.dataBytes, 5);
    const qr = proxy.requests((x) => x.dwnMethod === 'RecordsQuery').at(-1)!;
    assert.equal(qr.filter?.protocolPath, 'note');
    assert.equal(proxy.replies((x) => x.request === last).at(-1)?.status, 200);
  });

  test('REPLAY: one client is served the previous version of a record, the other the current one', async () => {
    const v1 = await write('version-1');
    await new Promise((r) => setTimeout(r, 5)); // a later messageTimestamp for the update
    await queryNotes(bobC); // the proxy captures what bob was shown: version 1
    await bobC.read(v1.recordId);
    const old = proxy.captured((c) => c.recordId === v1.recordId && c.kind === 'query-entry');
    assert.ok(old.length > 0, 'version 1 was captured');
    assert.equal(text(old.at(-1)!.data), 'version-1');
    const oldRead = proxy.captured((c) => c.recordId === v1.recordId && c.kind === 'read');
    assert.equal(text(oldRead.at(-1)!.data), 'version-1');

    const v2 = await write('version-2', { recordId: v1.recordId, dateCreated: v1.message.descriptor.dateCreated });
    assert.equal((await bobC.read(v1.recordId))?.message.descriptor.messageTimestamp, v2.message.descriptor.messageTimestamp);

    const off = proxy.onReply(replayHook([...old, ...oldRead], { forAuthor: bob.did }));
    try {
      const bobSees = (await queryNotes(bobC)).find((e) => e.recordId === v1.recordId)!;
      assert.equal(bobSees.descriptor.messageTimestamp, v1.message.descriptor.messageTimestamp, 'bob gets the old version');
      assert.equal(text(Buffer.from(bobSees.encodedData ?? '', 'base64url')), 'version-1');
      const bobReads = await bobC.read(v1.recordId);
      assert.equal(bobReads?.message.descriptor.messageTimestamp, v1.message.descriptor.messageTimestamp);
      assert.equal(text(bobReads?.data), 'version-1');

      const aliceSees = (await queryNotes(aliceC)).find((e) => e.recordId === v1.recordId)!;
      assert.equal(aliceSees.descriptor.messageTimestamp, v2.message.descriptor.messageTimestamp, 'alice still gets the current version');
      assert.equal(text((await aliceC.read(v1.recordId))?.data), 'version-2');
      assert.ok(proxy.replies((r) => r.rewritten && r.request.author === bob.did).length >= 2);
    } finally {
      off();
    }
    const after = (await queryNotes(bobC)).find((e) => e.recordId === v1.recordId)!;
    assert.equal(after.descriptor.messageTimestamp, v2.message.descriptor.messageTimestamp, 'hook removed: current again');
  });

  test('FILTER: an entry is absent for one client only', async () => {
    const hidden = await write('hidden');
    const shown = await write('shown');
    const off = proxy.onReply(filterEntriesHook((e) => e.recordId === hidden.recordId, { forAuthor: bob.did }));
    try {
      const bobIds = (await queryNotes(bobC)).map((e) => e.recordId);
      assert.ok(!bobIds.includes(hidden.recordId), 'hidden from bob');
      assert.ok(bobIds.includes(shown.recordId));
      assert.equal(await bobC.read(hidden.recordId), undefined, 'a read of it is a 404 for bob');
      const aliceIds = (await queryNotes(aliceC)).map((e) => e.recordId);
      assert.ok(aliceIds.includes(hidden.recordId), 'alice still sees it');
    } finally {
      off();
    }
    assert.ok((await queryNotes(bobC)).some((e) => e.recordId === hidden.recordId));
  });

  test('subscriptions work through the proxy, and events can be dropped', async () => {
    const events: RecordEvent[] = [];
    const statuses: SubscriberStatus[] = [];
    const sub = new DwnSubscriber(
      proxy.url,
      [{ key: 'note', target: alice.did, build: () => aliceC.subscribeMessage({ protocol: PROTOCOL, protocolPath: 'note' }), onEvent: (e) => events.push(e) }],
      (s) => statuses.push(s),
    );
    const before = proxy.counters();
    sub.start();
    try {
      await until(() => statuses.some((s) => s.type === 'up'), 10_000, 'subscriber up');
      assert.equal(diffCounters(before, proxy.counters()).byAuthorMethod[alice.did]?.RecordsSubscribe, 1);
      const first = await write('event-1');
      await until(() => events.some((e) => idOf(e) === first.recordId), 10_000, 'event through the proxy');

      // drop events of notes without a recipient
      const off = proxy.dropEvents(({ event }) => (event.message?.descriptor as { recipient?: string } | undefined)?.recipient === undefined);
      const dropped = await aliceC.write({ protocol: PROTOCOL, protocolPath: 'note', data: bytes('drop me'), dataFormat: 'application/octet-stream' });
      const third = await write('event-3');
      await until(() => events.some((e) => idOf(e) === third.recordId), 10_000, 'third event');
      off();
      const last = await write('event-5');
      await until(() => events.some((e) => idOf(e) === last.recordId), 10_000, 'event after the filter is removed');
      assert.ok(!events.some((e) => idOf(e) === dropped.recordId), 'the dropped event never reached the client');
      assert.equal(diffCounters(before, proxy.counters()).eventsDropped, 1);
      assert.ok(proxy.captured((c) => c.kind === 'event' && c.recordId === dropped.recordId).length > 0, 'dropped events are still captured');
    } finally {
      await sub.stop();
    }
  });

  test('close() ends every connection', async () => {
    const p = await DwnProxy.start({ upstream: dwn.url });
    const c = new DwnClient(p.url, alice.did, alice);
    await queryNotes(c);
    const statuses: SubscriberStatus[] = [];
    const sub = new DwnSubscriber(p.url, [{ key: 'n', target: alice.did, build: () => c.subscribeMessage({ protocol: PROTOCOL }), onEvent: () => {} }], (s) => statuses.push(s), {
      backoff: { initialMs: 50, maxMs: 100 },
    });
    sub.start();
    await until(() => statuses.some((s) => s.type === 'up'), 10_000, 'subscriber up');
    await p.close();
    await until(() => statuses.some((s) => s.type === 'down'), 5000, 'subscriber sees the proxy gone');
    await sub.stop();
    await assert.rejects(fetch(new URL('/health', p.url)), 'nothing listens any more');
  });
});

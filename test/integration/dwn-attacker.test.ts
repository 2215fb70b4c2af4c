/**
 * The control plane against its attackers, with a real dwn-server and real control clients:
 *
 *   - a member device that writes hostile records (an equivocating JWE, relay records it may not
 *     write, relays it proposes);
 *   - the DWN operator, as a proxy in front of the server that replays an old network record to
 *     one device after a key rotation, puts an older record's data in a subscription event, and
 *     as a reader of the server's storage at rest;
 *   - a removed device, with every key it ever held.
 *
 * Each test asserts what the attacker gains: nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { authorOf, DwnProxy, replayHook } from '../helpers/dwn-proxy.js';
import { findOccurrences, scanDwnStorage } from '../helpers/dwn-storage-scan.js';
import { waitForMap } from '../helpers/control.js';
import { initProfile } from '../../src/identity/profile.js';
import { DwnError } from '../../src/errors.js';
import { DwnClient } from '../../src/dwn/client.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer, removePeer } from '../../src/control/peer-ops.js';
import { approveRelay, listRelayProposals, publishRelay } from '../../src/control/relay-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import { decryptJwe, deriveNetworkKey, directKid, encryptJson, JWE_BUCKETS, padToBucket, x25519PublicOf, networkKid } from '../../src/control/crypto.js';
import { Keyring } from '../../src/control/keyring.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI, ROLE_NODE } from '../../src/control/protocol.js';
import { configFromMap } from '../../src/daemon/map-to-config.js';
import type { ControlContext } from '../../src/control/session.js';
import type { NetworkMap } from '../../src/control/netmap.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let dwn: TestDwn;
let proxy: DwnProxy;
let root: string;
/** owner; v: an honest device that reads through the proxy; r: removed later; m: hostile member device. */
let owner: ControlContext, v: ControlContext, r: ControlContext, m: ControlContext;
let networkId: string;
let ownerClient: ControlClient;
let vClient: ControlClient;
const clients: ControlClient[] = [];

const endpoint = (port: number, extra: Record<string, unknown> = {}) => ({
  publicEndpoints: [{ address: '203.0.113.9', port, source: 'stun' as const }],
  localEndpoints: [],
  natType: 'unknown' as const,
  discoKey: Buffer.alloc(32, 5).toString('base64'),
  updatedAt: new Date().toISOString(),
  ...extra,
});

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function open(ctx: ControlContext, o: { cache?: boolean } = {}): Promise<ControlClient> {
  const c = await ControlClient.open({ ctx, backoff: { initialMs: 200, maxMs: 1000 }, ...o });
  clients.push(c);
  c.start();
  return c;
}

/** The member device's own DWN client (it writes whatever it likes under its node record). */
function hostile(): DwnClient {
  return new DwnClient(dwn.url, owner.profile.did, { did: m.profile.did, edSeed: m.profile.keys.edSeed });
}

async function hostileNode(): Promise<string> {
  const n = await hostile().query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, contextId: networkId, recipient: m.profile.did }, { protocolRole: ROLE_NODE });
  return n[0]!.contextId!;
}

/** The current network key as a device holds it. */
function netRecipient(epoch: number) {
  const pub = x25519PublicOf(deriveNetworkKey(owner.profile.keys.xPrivate, networkId, epoch));
  return { kid: networkKid(pub), publicKey: pub };
}

const endpointOf = (map: NetworkMap | undefined, did: string) => map?.peers.find((p) => p.did === did)?.endpoints[0]?.port ?? null;

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-attack-${tag}-`));
  dwn = await startTestDwn();
  proxy = await DwnProxy.start({ upstream: dwn.url });
  const mk = (n: string): ControlContext => {
    const home = join(root, n);
    return { home, profile: initProfile(home).profile };
  };
  [owner, v, r, m] = [mk('owner'), mk('v'), mk('r'), mk('m')];
  networkId = (await createNetwork(owner, { name: `attack-${tag}`, endpoint: dwn.url })).networkId;
  for (const x of [v, r, m]) await addPeer(owner, x.profile.did);
  await joinNetwork(v, { anchor: owner.profile.did, networkId, endpoint: proxy.url, nodeInfo: { hostname: 'victim' } });
  await joinNetwork(r, { anchor: owner.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: 'removed' } });
  await joinNetwork(m, { anchor: owner.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: 'member' } });
  ownerClient = await open(owner);
  vClient = await open(v);
  await waitForMap(vClient, (x) => x.peers.length === 3, 10_000);
  await waitForMap(ownerClient, (x) => x.peers.length === 3, 10_000);
});

after(async () => {
  for (const c of clients) await c.stop().catch(() => undefined);
  await proxy?.close();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('a hostile member device', () => {
  test('an endpoint record with an extra entry for the owner: every reader sees the same record', async () => {
    const parent = await hostileNode();
    const honest = JSON.parse(Buffer.from(await encryptJson(endpoint(41000), [netRecipient(0), { kid: directKid(), publicKey: m.profile.keys.xPublic }])).toString());
    const forOwner = JSON.parse(Buffer.from(await encryptJson(endpoint(42000), [{ kid: directKid(), publicKey: owner.profile.keys.xPublic }])).toString());
    // the owner's entry goes first: a reader that opened the first entry it can would differ
    honest.recipients.unshift(forOwner.recipients[0]);
    const write = (data: Uint8Array) => hostile().write({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, data, dataFormat: DATA_FORMAT, parentContextId: parent });
    await write(new TextEncoder().encode(padToBucket(JSON.stringify(honest), JWE_BUCKETS)));
    await waitForMap(vClient, (x) => endpointOf(x, m.profile.did) === 41000, 5000);
    await waitForMap(ownerClient, (x) => endpointOf(x, m.profile.did) === 41000, 5000);

    // two network entries (which could wrap two content keys): every reader skips it and counts it
    const before = [ownerClient.stats.skipped.invalid, vClient.stats.skipped.invalid];
    const two = JSON.parse(Buffer.from(await encryptJson(endpoint(43000), [netRecipient(0), netRecipient(0)])).toString());
    await write(new TextEncoder().encode(padToBucket(JSON.stringify(two), JWE_BUCKETS)));
    await until(() => ownerClient.stats.skipped.invalid > before[0]! && vClient.stats.skipped.invalid > before[1]!, 5000, 'both readers count the equivocating record');
    assert.equal(endpointOf(ownerClient.map, m.profile.did), 41000);
    assert.equal(endpointOf(vClient.map, m.profile.did), 41000);
  });

  test('a relay it names in its endpoint, or writes as a relay record, is never used; a proposal waits for the owner', async () => {
    const parent = await hostileNode();
    for (const preferredRelay of ['not a url', 'http://127.0.0.1:9/derp']) {
      const data = await encryptJson(endpoint(44000, { preferredRelay }), [netRecipient(0), { kid: directKid(), publicKey: m.profile.keys.xPublic }]);
      await hostile().write({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, data, dataFormat: DATA_FORMAT, parentContextId: parent });
      const map = await waitForMap(vClient, (x) => x.peers.some((p) => p.did === m.profile.did && p.preferredRelay === preferredRelay), 20_000);
      const cfg = configFromMap(map);
      // the member's peer is still configured (it stays reachable), without the relay it named
      const peer = cfg.peers.find((p) => p.did === m.profile.did);
      assert.ok(peer, 'the member stays a peer');
      assert.equal(peer.homeRelay, null);
      assert.ok(!cfg.relays.some((x) => x.url.includes('127.0.0.1:9')), 'the member URL is not a relay');
      assert.ok(cfg.problems.some((p) => p.field === 'preferredRelay'), 'the ignored relay is reported');
      assert.equal(cfg.peers.length, 3, 'every other peer is configured too');
    }
    // relay records are the owner's: the DWN refuses the member's
    const relayData = await encryptJson({ url: 'http://127.0.0.1:9/derp', region: 'evil' }, [netRecipient(0)]);
    await assert.rejects(
      hostile().write({ protocol: PROTOCOL_URI, protocolPath: PATHS.relay, data: relayData, dataFormat: DATA_FORMAT, parentContextId: networkId, protocolRole: ROLE_NODE }),
      (e: unknown) => e instanceof DwnError && e.status === 401,
    );
    // a proposal is accepted, read by the owner only, and used once the owner approves it
    const proposed = await publishRelay(m, { url: 'http://198.51.100.77:3340/derp', region: 'member' });
    assert.equal(proposed.as, 'proposal');
    const rows = await listRelayProposals(owner);
    assert.deepEqual(rows.map((x) => [x.url, x.approved, x.proposedBy]), [['http://198.51.100.77:3340/derp', false, m.profile.did]]);
    await new Promise((res) => setTimeout(res, 1500));
    assert.deepEqual(vClient.map!.relays, [], 'nobody uses a relay the owner has not approved');
    await approveRelay(owner, 'http://198.51.100.77:3340/derp');
    await waitForMap(vClient, (x) => x.relays.some((y) => y.url === 'http://198.51.100.77:3340/derp'), 5000);
  });
});

describe('the DWN operator and a removed device', () => {
  let removedAt = '';

  test('a replayed old network record after a rotation: the device keeps the newer epoch and writes nothing under the old key', async () => {
    // what the operator kept from before the rotation: the network record and v's key delivery
    const oldNetwork = proxy.captured((c) => (c.protocolPath === PATHS.network && c.recordId === networkId) || c.protocolPath === PATHS.keyDelivery);
    assert.ok(oldNetwork.some((c) => c.protocolPath === PATHS.network), 'the proxy saw the epoch-0 network record');
    assert.ok(oldNetwork.some((c) => c.protocolPath === PATHS.keyDelivery), 'the proxy saw the epoch-0 key delivery');
    removedAt = new Date().toISOString();
    const res = await removePeer(owner, r.profile.did);
    assert.equal(res.epoch, 1);
    await waitForMap(vClient, (x) => x.epoch === 1 && !x.peers.some((p) => p.did === r.profile.did), 5000);

    const off = proxy.onReply(replayHook(oldNetwork, { forAuthor: v.profile.did }));
    try {
      const rollbacks = vClient.stats.skipped.rollback;
      await vClient.refresh();
      assert.equal(vClient.map!.epoch, 1, 'the device stays at epoch 1');
      assert.ok(vClient.stats.skipped.rollback > rollbacks, 'the replay is counted');
      // a restarted device (no cached map, shown the old key too) remembers the epoch on disk:
      // no map, no write
      const writesBefore = proxy.requests((q) => q.author === v.profile.did && q.dwnMethod === 'RecordsWrite').length;
      const fresh = await open(v, { cache: false });
      await assert.rejects(fresh.waitForMap(3000, false), /no network map/);
      assert.ok(fresh.stats.skipped.rollback >= 1);
      await assert.rejects(fresh.publishEndpoint(endpoint(45000)));
      assert.equal(proxy.requests((q) => q.author === v.profile.did && q.dwnMethod === 'RecordsWrite').length, writesBefore, 'nothing written under the old key');
      await fresh.stop();
    } finally {
      off();
    }
    await vClient.publishEndpoint(endpoint(45001));
  });

  test("the operator puts an older record's data in an event: checked against the signed dataCid, it gains nothing", async () => {
    const did = owner.profile.did;
    const isOwnersEndpoint = (m: unknown) => (m as { descriptor?: { protocolPath?: string } }).descriptor?.protocolPath === PATHS.endpoint && authorOf(m) === did;
    await ownerClient.publishEndpoint(endpoint(46000));
    await waitForMap(vClient, (x) => endpointOf(x, did) === 46000, 5000);
    // what the operator kept: the data the 46000 record's event carried to v
    const kept = proxy
      .captured((c) => c.kind === 'event' && c.request.author === v.profile.did && isOwnersEndpoint(c.message))
      .map((c) => (c.message as { encodedData?: unknown }).encodedData)
      .filter((d): d is string => typeof d === 'string')
      .at(-1);
    assert.ok(kept, 'the server sent the record data with its event');
    const off = proxy.rewriteEvents((e) => (isOwnersEndpoint(e.event.message) ? { ...e.event, message: { ...e.event.message, encodedData: kept } } : undefined));
    try {
      const bad = vClient.stats.skipped.badSignature;
      const seen: (number | null)[] = [];
      const stop = vClient.on((ev) => void (ev.type === 'map' && seen.push(endpointOf(ev.map, did))));
      await ownerClient.publishEndpoint(endpoint(46001));
      await until(() => vClient.stats.skipped.badSignature > bad, 5000, 'the swapped data refused');
      stop();
      // the newer message with the older data is not taken: no version of it, old or new, in the map
      assert.ok(!seen.includes(46001), 'the record whose data was swapped reached the map');
      assert.equal(endpointOf(vClient.map, did), 46000);
      assert.equal(vClient.stats.skipped.badSignature, bad + 1);
    } finally {
      off();
    }
    // without the proxy's meddling the next change comes through (after the 5 s a slot that gave
    // junk waits: the operator can delay a record, as it can by dropping its event, not forge it)
    await ownerClient.publishEndpoint(endpoint(46002));
    await waitForMap(vClient, (x) => endpointOf(x, did) === 46002, 15_000);
  });

  test('the operator tampers with heartbeats: another version’s signature or an altered initial write is refused; the peer keeps its time', async () => {
    const did = owner.profile.did;
    const isOwnersEndpoint = (m: unknown) => (m as { descriptor?: { protocolPath?: string } }).descriptor?.protocolPath === PATHS.endpoint && authorOf(m) === did;
    const timeOf = () => vClient.map?.peers.find((p) => p.did === did)?.endpointUpdatedAt ?? null;
    const ep = endpoint(46100);
    await ownerClient.publishEndpoint(ep);
    await waitForMap(vClient, (x) => endpointOf(x, did) === 46100, 5000);
    // a genuine heartbeat (the same bytes again, a newer time) moves the peer's time
    let t = timeOf();
    await ownerClient.publishEndpoint(ep);
    await until(() => timeOf() !== t, 5000, 'the heartbeat taken');
    const events = proxy.captured((c) => c.kind === 'event' && c.request.author === v.profile.did && isOwnersEndpoint(c.message));
    const heartbeat = events.at(-1)!.raw as { message: Record<string, unknown>; initialWrite?: Record<string, unknown> };
    assert.ok(heartbeat.initialWrite, 'a heartbeat event carries the initial write');
    const tampered: Array<[string, (e: typeof heartbeat) => typeof heartbeat]> = [
      // a newer re-write under the signature of the version before it
      ['another version’s signature', (e) => ({ ...e, message: { ...e.message, authorization: heartbeat.message.authorization } })],
      // the initial write it carries altered (the record's creation date moved); this event comes
      // while the slot waits out the junk before it, and must be checked in full all the same
      ['an altered initial write', (e) => ({ ...e, initialWrite: { ...e.initialWrite, descriptor: { ...(e.initialWrite!.descriptor as object), dateCreated: '2020-01-01T00:00:00.000000Z' } } })],
    ];
    for (const [what, rewrite] of tampered) {
      const off = proxy.rewriteEvents((e) => (isOwnersEndpoint(e.event.message) && e.request.author === v.profile.did ? rewrite(e.event as typeof heartbeat) : undefined));
      try {
        t = timeOf();
        const bad = vClient.stats.skipped.badSignature;
        await ownerClient.publishEndpoint(ep);
        // a slot that gave junk waits 5 s before its next event is taken
        await until(() => vClient.stats.skipped.badSignature > bad, 15_000, `the heartbeat with ${what} refused`);
        assert.equal(timeOf(), t, `a heartbeat with ${what} moved the peer's time`);
      } finally {
        off();
      }
    }
    // untouched, the next heartbeat is taken
    t = timeOf();
    await ownerClient.publishEndpoint(ep);
    await until(() => timeOf() !== t, 15_000, 'the next genuine heartbeat taken');
  });

  test('the removed device: no key, no records, no role; it decrypts nothing written after its removal', async () => {
    const ownerDwn = new DwnClient(dwn.url, owner.profile.did, { did: owner.profile.did, edSeed: owner.profile.keys.edSeed });
    const all = await ownerDwn.query({ protocol: PROTOCOL_URI, contextId: networkId });
    assert.deepEqual(all.filter((e) => e.descriptor.recipient === r.profile.did).map((e) => e.descriptor.protocolPath), [], 'nothing addressed to it');
    assert.equal(all.filter((e) => authorOf(e) === r.profile.did).length, 0, 'nothing it wrote');
    // everything it ever held: its own key and the epoch-0 network key
    const ring = new Keyring(r.profile.keys);
    ring.addNetworkKey(0, deriveNetworkKey(owner.profile.keys.xPrivate, networkId, 0));
    const after = all.filter((e) => e.descriptor.messageTimestamp > removedAt);
    assert.ok(after.length >= 6, `records written since the removal: ${after.length}`);
    for (const e of after) {
      const data = e.encodedData ? new Uint8Array(Buffer.from(e.encodedData, 'base64url')) : (await ownerDwn.read(e.recordId))!.data;
      await assert.rejects(decryptJwe(data, ring, 'network-or-direct'), `${e.descriptor.protocolPath} is readable by the removed device`);
    }
    // and the DWN no longer lets it in
    const rClient = new DwnClient(dwn.url, owner.profile.did, { did: r.profile.did, edSeed: r.profile.keys.edSeed });
    await assert.rejects(rClient.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, contextId: networkId }, { protocolRole: ROLE_NODE }), (e: unknown) => e instanceof DwnError && e.status === 401);
  });

  test('storage at rest: no WireGuard key, no epoch or per-device tags, sizes only in buckets, no data of the removed device', () => {
    const scan = scanDwnStorage(dwn.dataDir);
    const ours = scan.messages.filter((x) => x.store === 'messages' && x.protocol === PROTOCOL_URI && x.method === 'Write');
    assert.ok(ours.length >= 10, `${ours.length} records in storage`);
    const keys = [owner, v, r, m].map((x) => ({ label: `${x.profile.did.slice(-6)} wireguard key`, bytes: x.profile.keys.xPublic }));
    assert.deepEqual(findOccurrences(scan, keys).map((o) => `${o.label} ${o.encoding} in ${o.where}`), []);
    assert.deepEqual(ours.filter((x) => Object.keys(x.tags ?? {}).length > 0).map((x) => x.tags), [], 'no tags in clear');
    const buckets = JWE_BUCKETS as readonly number[];
    const odd = ours.filter((x) => x.dataSize !== undefined && x.dataSize !== null && !buckets.includes(Number(x.dataSize)));
    assert.deepEqual(odd.map((x) => `${x.protocolPath}: ${x.dataSize}`), [], 'record sizes outside the buckets');
    // the DWN keeps a data-less stub of a deleted record (its id and addressing), never its data
    const rData = ours.filter((x) => (x.recipient === r.profile.did || x.author === r.profile.did) && (x.encodedData !== undefined && x.encodedData !== null));
    assert.deepEqual(rData.map((x) => x.protocolPath), []);
    const rRecords = new Set(ours.filter((x) => x.recipient === r.profile.did || x.author === r.profile.did).map((x) => x.recordId));
    assert.deepEqual(scan.data.filter((d) => rRecords.has(d.recordId)).length, 0);
  });
});

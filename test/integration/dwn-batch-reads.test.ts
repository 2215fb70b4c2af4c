/**
 * A key rotation (every node record, endpoint and nodeInfo re-encrypted) costs a watcher a few
 * requests and no map per same-content re-write, and a member flooding its own slot in the same
 * moment changes nothing; many records of one kind at once are read with one query for what
 * changed, not one read each (what the bounded answer misses is read one by one). Real
 * dwn-server (events without their data: the read path), real control clients.
 */
import { waitForMap } from '../helpers/control.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { initProfile } from '../../src/identity/profile.js';
import { DwnClient } from '../../src/dwn/client.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer, removePeer } from '../../src/control/peer-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI } from '../../src/control/protocol.js';
import type { NetworkMap } from '../../src/control/netmap.js';
import type { ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
const DEVICES = 7;
const REENCRYPT_WITHIN_MS = 3000;
let dwn: TestDwn;
let root: string;
let owner: ControlContext;
const devs: ControlContext[] = [];
const clients: ControlClient[] = [];

function ctxOf(name: string): ControlContext {
  const home = join(root, name);
  return { home, profile: initProfile(home).profile };
}

const endpoint = (i: number) => ({
  publicEndpoints: [{ address: `198.51.100.${i + 10}`, port: 41000 + i, source: 'static' as const, priority: 5 }],
  localEndpoints: [],
  natType: 'endpoint-independent' as const,
  discoKey: Buffer.alloc(32, i + 1).toString('base64'),
});

const complete = (m: NetworkMap, dids: string[]) => dids.every((d) => m.peers.some((p) => p.did === d && p.endpoints.length > 0));

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-batch-${tag}-`));
  dwn = await startTestDwn({ eventData: false }); // the read path: events that name records without their data
  owner = ctxOf('owner');
  const created = await createNetwork(owner, { name: `batch-${tag}`, endpoint: dwn.url });
  for (let i = 0; i < DEVICES; i++) {
    const d = ctxOf(`d${i}`);
    await addPeer(owner, d.profile.did);
    await joinNetwork(d, { anchor: owner.profile.did, networkId: created.networkId, endpoint: dwn.url, nodeInfo: { hostname: `d${i}-${tag}` } });
    devs.push(d);
  }
  for (const [i, d] of devs.entries()) {
    // the watcher (d0) gathers a burst of events for up to a second before it reads them
    // after a rotation each device re-writes its own records within 3 s (not the default minutes)
    const c = await ControlClient.open(i === 0 ? { ctx: d, debounceMs: 1000, maxDelayMs: 3000, reencryptWithinMs: REENCRYPT_WITHIN_MS } : { ctx: d, reencryptWithinMs: REENCRYPT_WITHIN_MS });
    c.start();
    clients.push(c);
    await c.publishEndpoint(endpoint(i));
  }
});

after(async () => {
  for (const c of clients) await c.stop();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

test('a key rotation is read with a query per kind; a flood in one slot at the same moment changes nothing', async () => {
  const watcher = clients[0]!;
  const stay = devs.slice(0, DEVICES - 1).map((d) => d.profile.did);
  await waitForMap(watcher, (m) => complete(m, stay.slice(1)), 20_000);
  const before = watcher.stats.requests;
  const statsBefore = watcher.stats;

  // the flooder: a member device writing junk under its own node, as fast as it can, while the
  // owner rotates the key (the junk is newer than every honest record of the rotation)
  const flooder = devs[1]!;
  const fc = new DwnClient(dwn.url, owner.profile.did, { did: flooder.profile.did, edSeed: flooder.profile.keys.edSeed });
  const node = (await fc.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, recipient: flooder.profile.did }))[0]!;
  let flooding = true;
  let junk = 0;
  const flood = (async () => {
    const bytes = new TextEncoder().encode('{"not":"a jwe"}');
    while (flooding) {
      await fc.write({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, data: bytes, dataFormat: DATA_FORMAT, parentContextId: node.contextId! });
      junk++;
    }
  })();
  let res;
  try {
    res = await removePeer(owner, devs[DEVICES - 1]!.profile.did);
    // the watcher has the new epoch with everyone (the devices' own records under the previous
    // epoch serve until they re-write them)
    await waitForMap(watcher, (m) => m.epoch === res!.epoch && !m.peers.some((p) => p.did === devs[DEVICES - 1]!.profile.did) && complete(m, stay.slice(1)), 30_000);
  } finally {
    flooding = false;
    await flood;
  }
  const after = watcher.stats.requests;
  const requests = after.eventReads - before.eventReads;
  const queries = after.batchQueries - before.batchQueries;
  // what the rotation wrote that the watcher reads: the owner's node records, nodeInfo and
  // endpoint, policy…; then each other device's nodeInfo and endpoint, each after its own wait.
  // The same-content re-writes (node records, nodeInfo) reach the watcher after its map is
  // complete again (the old-epoch versions serve meanwhile): the owner's DEVICES - 1, the other
  // devices' DEVICES - 2 nodeInfo
  await waitUntil(() => watcher.stats.contentRewrites - statsBefore.contentRewrites >= 2 * DEVICES - 3, REENCRYPT_WITHIN_MS + 20_000);
  // every device that stays re-wrote both its records, and the watcher has read them all (no
  // event of the rotation left to land in the next test's batch)
  await waitUntil(() => clients.slice(0, DEVICES - 1).every((c) => c.stats.reencrypted >= 2), REENCRYPT_WITHIN_MS + 20_000);
  await waitForQuiet(watcher, 2000);
  const rebuilds = watcher.stats.rebuilds - statsBefore.rebuilds;
  const rewrites = watcher.stats.contentRewrites - statsBefore.contentRewrites;
  console.log(`# rotation with ${DEVICES - 1} devices and ${junk} junk records: ${requests} requests for events, ${queries} of them queries; full loads ${after.fullLoads - before.fullLoads}; maps built ${rebuilds}, same-content re-writes ${rewrites}`);
  assert.ok(junk >= 5, `the flood wrote ${junk} records`);
  assert.ok(requests < 3 * DEVICES, `${requests} requests`);
  assert.equal(after.fullLoads, before.fullLoads);
  // the owner re-wrote every node record with the same content: none of them built a map (the
  // tombstone, the new network record and the devices' own re-writes may)
  assert.ok(rebuilds <= 3, `${rebuilds} maps built for the rotation`);
  // the flooder's honest endpoint (written before the flood, re-encrypted after) is still the one in the map
  const peer = watcher.map!.peers.find((p) => p.did === flooder.profile.did);
  assert.equal(peer?.endpoints[0]?.port, 41001);
});

test('many records of one kind at once (every device moves) are read with a query, not one read each', async () => {
  const watcher = clients[0]!;
  const movers = clients.slice(1, DEVICES - 1);
  const before = watcher.stats.requests;
  const moved = (i: number) => ({ ...endpoint(i), publicEndpoints: [{ ...endpoint(i).publicEndpoints[0]!, port: 43000 + i }] });
  await Promise.all(movers.map((c, j) => c.publishEndpoint(moved(j + 1))));
  await waitForMap(watcher, (m) => movers.every((_, j) => m.peers.find((p) => p.did === devs[j + 1]!.profile.did)?.endpoints[0]?.port === 43000 + j + 1), 20_000);
  const after = watcher.stats.requests;
  console.log(`# ${movers.length} endpoint changes at once: ${after.eventReads - before.eventReads} requests, ${after.batchQueries - before.batchQueries} of them queries`);
  assert.ok(after.batchQueries - before.batchQueries >= 1, 'no kind was read with a query');
  assert.ok(after.eventReads - before.eventReads < movers.length, `${after.eventReads - before.eventReads} requests for ${movers.length} records`);
});

/** Until the client has had no subscription event for `quietMs` (and no refresh is pending). */
async function waitForQuiet(c: ControlClient, quietMs: number): Promise<void> {
  let events = c.stats.events;
  let since = Date.now();
  await waitUntil(() => {
    const now = c.stats.events;
    if (now !== events) {
      events = now;
      since = Date.now();
    }
    return Date.now() - since >= quietMs;
  }, 30_000);
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/**
 * A read that fails does not lose the record it was for. A device learns another device's new
 * endpoint from a subscription event and one read of the record it names; when that read fails
 * (a busy DWN times out or answers 5xx), the record is read again after a backoff — not left
 * out of the map until its writer's next heartbeat, minutes later. Real dwn-server, real
 * control clients; the failure comes from the man-in-the-middle proxy in front of the server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { DwnProxy } from '../helpers/dwn-proxy.js';
import { waitForMap } from '../helpers/control.js';
import { initProfile } from '../../src/identity/profile.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer, removePeer } from '../../src/control/peer-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import type { NetworkMap } from '../../src/control/netmap.js';
import type { ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let dwn: TestDwn;
let proxy: DwnProxy;
let root: string;
/** r: the device that reads through the proxy; w: the device whose endpoint changes; x: removed. */
let owner: ControlContext, r: ControlContext, w: ControlContext, x: ControlContext;
const clients: ControlClient[] = [];

const endpoint = (port: number) => ({
  publicEndpoints: [{ address: '203.0.113.7', port, source: 'stun' as const }],
  localEndpoints: [],
  natType: 'unknown' as const,
  discoKey: Buffer.alloc(32, 7).toString('base64'),
});

const portOf = (map: NetworkMap | undefined, did: string) => map?.peers.find((p) => p.did === did)?.endpoints[0]?.port ?? null;

async function open(ctx: ControlContext): Promise<ControlClient> {
  // after a key rotation, own records are re-written within 2 s (not the default minutes)
  const c = await ControlClient.open({ ctx, backoff: { initialMs: 200, maxMs: 1000 }, cache: false, reencryptWithinMs: 2000 });
  clients.push(c);
  c.start();
  return c;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-readfail-${tag}-`));
  dwn = await startTestDwn({ eventData: false }); // the read path: events that name records without their data
  proxy = await DwnProxy.start({ upstream: dwn.url });
  const mk = (n: string): ControlContext => {
    const home = join(root, n);
    return { home, profile: initProfile(home).profile };
  };
  [owner, r, w, x] = [mk('owner'), mk('r'), mk('w'), mk('x')];
  const { networkId } = await createNetwork(owner, { name: `readfail-${tag}`, endpoint: dwn.url });
  for (const d of [r, w, x]) await addPeer(owner, d.profile.did);
  await joinNetwork(r, { anchor: owner.profile.did, networkId, endpoint: proxy.url, nodeInfo: { hostname: 'reader' } });
  await joinNetwork(w, { anchor: owner.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: 'writer' } });
  await joinNetwork(x, { anchor: owner.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: 'removed' } });
});

after(async () => {
  for (const c of clients) await c.stop().catch(() => undefined);
  await proxy?.close();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('a read of a record an event named fails', () => {
  test('the record is read again after a backoff and reaches the map', async () => {
    const rClient = await open(r);
    const wClient = await open(w);
    await waitForMap(rClient, (m) => m.peers.some((p) => p.did === w.profile.did), 10_000);
    await wClient.publishEndpoint(endpoint(46001));
    await waitForMap(rClient, (m) => portOf(m, w.profile.did) === 46001, 10_000);

    // the reader's next read (the one the endpoint's event asks for) fails once, as a DWN under load does
    let failed = 0;
    const off = proxy.onReply(({ request, reply }) => {
      if (failed > 0 || request.author !== r.profile.did || request.dwnMethod !== 'RecordsRead') return undefined;
      failed++;
      return { reply: { ...reply, status: { code: 500, detail: 'injected: the DWN is overloaded' } }, data: new Uint8Array() };
    });
    try {
      const readsBefore = rClient.stats.requests;
      await wClient.publishEndpoint(endpoint(46002));
      // the event came and its read failed …
      await waitForUntil(() => failed === 1, 10_000, 'the injected read failure');
      // … and the record still reaches the map, without a reconnect or a full re-query
      const m = await waitForMap(rClient, (x) => portOf(x, w.profile.did) === 46002, 10_000);
      assert.equal(portOf(m, w.profile.did), 46002);
      const readsAfter = rClient.stats.requests;
      assert.equal(readsAfter.fullLoads, readsBefore.fullLoads, 'the retry re-read everything');
      assert.ok(readsAfter.eventReads - readsBefore.eventReads >= 1, 'the record was read again');
      assert.ok(rClient.stats.lastError === null, `the error is cleared by the successful retry: ${rClient.stats.lastError}`);
    } finally {
      off();
    }
  });
});

describe('reads fail while the network key rotates', () => {
  test('the reader still takes the new key, drops the removed device, and re-writes its own records under the new key', async () => {
    const rClient = clients[0] ?? (await open(r));
    const wClient = clients[1] ?? (await open(w));
    await rClient.publishEndpoint(endpoint(47001));
    await waitForMap(wClient, (m) => portOf(m, r.profile.did) === 47001, 10_000);
    await waitForMap(rClient, (m) => m.peers.some((p) => p.did === x.profile.did), 10_000);

    // a read of a record written after the new network record fails (a DWN under load
    // mid-rotation): the refresh that saw the new epoch does not finish. The reader reads a few
    // records at once, so replies may come in any order: a later record's reply waits until the
    // new network record's has been seen
    let networkAt: string | undefined;
    let failed = 0;
    const off = proxy.onReply(async ({ request, reply }) => {
      if (!rotated || request.author !== r.profile.did || request.dwnMethod !== 'RecordsRead') return undefined;
      const d = (reply as { entry?: { recordsWrite?: { descriptor?: { protocolPath?: string; messageTimestamp?: string } } } }).entry?.recordsWrite?.descriptor;
      if (d?.messageTimestamp === undefined) return undefined;
      if (d.protocolPath === 'network') {
        if (networkAt === undefined || d.messageTimestamp > networkAt) networkAt = d.messageTimestamp;
        return undefined;
      }
      if (failed > 0) return undefined;
      await waitForUntil(() => networkAt !== undefined, 5_000, 'the new network record read').catch(() => undefined);
      if (networkAt === undefined || d.messageTimestamp <= networkAt) return undefined;
      failed++;
      return { reply: { ...reply, status: { code: 500, detail: 'injected: the DWN is overloaded' } }, data: new Uint8Array() };
    });
    let rotated = false;
    try {
      rotated = true;
      const res = await removePeer(owner, x.profile.did);
      assert.equal(res.epoch, 1);
      // the reader: the new epoch, without the removed device, with the writer (its records re-encrypted)
      await waitForMap(rClient, (m) => m.epoch === 1 && !m.peers.some((p) => p.did === x.profile.did) && portOf(m, w.profile.did) !== null, 30_000);
      // the writer sees the reader's endpoint (under the previous epoch first, inside the grace)…
      await waitForMap(wClient, (m) => m.epoch === 1 && portOf(m, r.profile.did) === 47001, 30_000);
      // … and the reader re-wrote its own records under the new key
      await waitForUntil(() => rClient.stats.reencrypted >= 2, 15_000, "the reader's re-write of its nodeInfo and endpoint");
      // the writer re-writes its own records after a wait too: the reader's read of one of them fails…
      await waitForUntil(() => failed >= 1, 15_000, 'a read failure injected after the new network record');
      // … and is read again: the writer's endpoint stays in the reader's map
      await waitForMap(rClient, (m) => m.epoch === 1 && portOf(m, w.profile.did) !== null, 15_000);
    } finally {
      off();
    }
  });
});

async function waitForUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

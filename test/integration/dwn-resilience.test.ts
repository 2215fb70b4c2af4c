/**
 * Bad input and outages against a real @web5/dwn-server: malformed, oversized, undecryptable
 * and unknown-key records are skipped and counted while the map stays right; with the DWN
 * down commands fail with one line naming the endpoint, the control client keeps (and after a
 * restart, reloads) the cached map, and recovers when the server returns.
 */
import { runCliCaptured } from '../helpers/in-process-cli.js';
import { waitForMap } from '../helpers/control.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { initProfile } from '../../src/identity/profile.js';
import { generateEd25519Seed, deriveDeviceKeys } from '../../src/identity/keys.js';
import { DwnError } from '../../src/errors.js';
import { DwnClient } from '../../src/dwn/client.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer } from '../../src/control/peer-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import { deriveNetworkKey, directKid, encryptJson, networkKid, x25519PublicOf } from '../../src/control/crypto.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI } from '../../src/control/protocol.js';
import type { ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let dwn: TestDwn;
let root: string;
let owner: ControlContext, bad: ControlContext, obs: ControlContext;
let networkId: string;
let obsClient: ControlClient;
let badClient: ControlClient;

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const endpoint = (port: number) => ({
  publicEndpoints: [{ address: '203.0.113.5', port, source: 'stun' as const }],
  localEndpoints: [],
  natType: 'unknown' as const,
  discoKey: Buffer.alloc(32, 9).toString('base64'),
});

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-res-${tag}-`));
  dwn = await startTestDwn();
  const mk = (n: string): ControlContext => {
    const home = join(root, n);
    return { home, profile: initProfile(home).profile };
  };
  owner = mk('owner');
  bad = mk('bad');
  obs = mk('obs');
  networkId = (await createNetwork(owner, { name: `res-${tag}`, endpoint: dwn.url })).networkId;
  await addPeer(owner, bad.profile.did);
  await addPeer(owner, obs.profile.did);
  await joinNetwork(bad, { anchor: owner.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: 'good-host' } });
  await joinNetwork(obs, { anchor: owner.profile.did, networkId, endpoint: dwn.url });
  const backoff = { initialMs: 200, maxMs: 1000 };
  badClient = await ControlClient.open({ ctx: bad, backoff });
  badClient.start();
  obsClient = await ControlClient.open({ ctx: obs, backoff });
  obsClient.start();
  await badClient.publishEndpoint(endpoint(43000));
  await waitForMap(obsClient, (m) => m.peers.some((p) => p.did === bad.profile.did && p.endpoints[0]?.port === 43000), 5000);
});

after(async () => {
  await obsClient?.stop();
  await badClient?.stop();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('bad records from a peer', () => {
  test('malformed, oversized, undecryptable and unknown-key records are skipped and counted; the map stays right', async () => {
    const client = new DwnClient(dwn.url, owner.profile.did, { did: bad.profile.did, edSeed: bad.profile.keys.edSeed });
    const badNode = (await client.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, contextId: networkId, recipient: bad.profile.did }))[0]!;
    const net0 = deriveNetworkKey(owner.profile.keys.xPrivate, networkId, 0);
    const goodRecipients = [
      { kid: networkKid(x25519PublicOf(net0)), publicKey: x25519PublicOf(net0) },
      { kid: directKid(), publicKey: bad.profile.keys.xPublic },
    ];
    const stranger = deriveDeviceKeys(generateEd25519Seed()).xPublic;
    const write = (path: string, data: Uint8Array) =>
      client.write({ protocol: PROTOCOL_URI, protocolPath: path, data, dataFormat: DATA_FORMAT, parentContextId: badNode.contextId! });
    // each bad record is the newest in its slot when the observer reads it: skipped and counted
    const expectSkip = async (counter: 'invalid' | 'decryptFailed' | 'unknownKey', path: string, data: Uint8Array) => {
      const before = obsClient.stats.skipped[counter];
      await write(path, data);
      // a slot that gave junk waits 5 s, then 10 s… before it is read again
      await until(() => obsClient.stats.skipped[counter] === before + 1, 25_000, `${counter} counted for ${path}`);
    };

    // oversized: the server refuses it ($size in the protocol)
    await assert.rejects(write(PATHS.nodeInfo, new Uint8Array(20_000).fill(65)), (e: unknown) => e instanceof DwnError && e.status === 400);
    // malformed content inside a valid JWE
    await expectSkip('invalid', PATHS.nodeInfo, await encryptJson({ hostname: 12, os: 'plan9', extra: 'x'.repeat(100) }, goodRecipients));
    await expectSkip('invalid', PATHS.endpoint, await encryptJson({ publicEndpoints: 'nope' }, goodRecipients));
    // not a JWE at all
    await expectSkip('invalid', PATHS.nodeInfo, new TextEncoder().encode('{"hostname":"plain-text-host","os":"linux","version":"1"}'));
    // a JWE naming the current network key whose entry does not open it
    await expectSkip('decryptFailed', PATHS.nodeInfo, await encryptJson({ hostname: 'evil', os: 'linux', version: '1' }, [{ kid: goodRecipients[0]!.kid, publicKey: stranger }]));
    // a JWE under a network key nobody holds
    await expectSkip('unknownKey', PATHS.endpoint, await encryptJson(endpoint(1), [{ kid: networkKid(stranger), publicKey: stranger }]));

    const s = obsClient.stats.skipped;
    const peer = obsClient.map!.peers.find((p) => p.did === bad.profile.did)!;
    assert.equal(peer.hostname, 'good-host');
    assert.equal(peer.endpoints[0]?.port, 43000);
    // still live: a good update after the bad ones goes through
    await badClient.publishEndpoint(endpoint(43001));
    await waitForMap(obsClient, (m) => m.peers.some((p) => p.did === bad.profile.did && p.endpoints[0]?.port === 43001), 25_000);
    // and a full re-query does not count the same bad records again (it does not even decode them)
    await obsClient.refresh();
    assert.deepEqual(obsClient.stats.skipped, s);
    assert.equal(obsClient.map!.peers.find((p) => p.did === bad.profile.did)?.endpoints[0]?.port, 43001);
  });
});

describe('a flood of junk in one slot', () => {
  test('costs each reader a few reads (the slot waits longer after each), not one per record; the honest map is untouched', async () => {
    const client = new DwnClient(dwn.url, owner.profile.did, { did: bad.profile.did, edSeed: bad.profile.keys.edSeed });
    const badNode = (await client.query({ protocol: PROTOCOL_URI, protocolPath: PATHS.node, contextId: networkId, recipient: bad.profile.did }))[0]!;
    const reads = obsClient.stats.requests.eventReads;
    const junk = new TextEncoder().encode('{"not":"a jwe"}');
    // one every 300 ms: slower than the event debounce, so each would be read on its own
    for (let i = 0; i < 20; i++) {
      await client.write({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, data: junk, dataFormat: DATA_FORMAT, parentContextId: badNode.contextId! });
      await new Promise((r) => setTimeout(r, 300));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const spent = obsClient.stats.requests.eventReads - reads;
    assert.ok(spent <= 5, `20 junk records cost the reader ${spent} reads`);
    assert.equal(obsClient.map!.peers.find((p) => p.did === bad.profile.did)?.endpoints[0]?.port, 43001);
  });
});

describe('a DWN that is down', () => {
  test('commands fail with one line naming the endpoint; the map is kept, reloaded from cache, and recovers', async () => {
    const lastHash = obsClient.map!.hash;
    const lost = new Promise<void>((resolve) => {
      const off = obsClient.on((e) => {
        if (e.type === 'connection' && !e.up) {
          off();
          resolve();
        }
      });
    });
    await dwn.halt();
    for (const args of [['peer', 'list'], ['status'], ['acl', 'show'], ['peer', 'add', bad.profile.did]]) {
      const r = await runCliCaptured([...args, '--home', owner.home]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr.join('|')}`);
      assert.equal(r.stderr.length, 1, `one line: ${r.stderr.join('|')}`);
      assert.ok(r.stderr[0]!.includes(dwn.url), r.stderr[0]);
      assert.match(r.stderr[0]!, /^meshd: cannot reach the DWN at /);
    }
    await lost;
    assert.equal(obsClient.map?.hash, lastHash, 'map kept while the DWN is down');
    // a device that has a cached map still answers `status` from it, and says so
    const st = await runCliCaptured(['status', '--json', '--home', obs.home]);
    assert.equal(st.code, 0, st.stderr.join('|'));
    const sj = JSON.parse(st.stdout) as { source: string; warning: string; peers: { did: string }[] };
    assert.equal(sj.source, 'cache');
    assert.ok(sj.warning.includes(dwn.url), sj.warning);
    assert.ok(sj.peers.some((p) => p.did === bad.profile.did));
    const human = await runCliCaptured(['status', '--home', obs.home]);
    assert.match(human.stdout, /Warning: cannot reach the DWN at .*cached at/);
    assert.equal(obsClient.stats.connected, false);
    // a restarted node brings its map back from the cache
    const restarted = await ControlClient.open({ ctx: obs, backoff: { initialMs: 200, maxMs: 1000 } });
    try {
      const cached = restarted.start();
      assert.equal(cached?.hash, lastHash);
      assert.ok(cached!.peers.some((p) => p.did === bad.profile.did && p.endpoints[0]?.port === 43001));
    } finally {
      await restarted.stop();
    }
    // the server returns: subscriptions come back, and live updates flow again
    const back = new Promise<void>((resolve) => {
      const off = obsClient.on((e) => {
        if (e.type === 'connection' && e.up) {
          off();
          resolve();
        }
      });
    });
    await dwn.restart();
    await back;
    await badClient.publishEndpoint(endpoint(43002));
    await waitForMap(obsClient, (m) => m.peers.some((p) => p.did === bad.profile.did && p.endpoints[0]?.port === 43002), 5000);
    assert.equal(obsClient.stats.connected, true);
  });
});

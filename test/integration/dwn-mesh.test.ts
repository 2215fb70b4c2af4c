/**
 * Coordination over a real @web5/dwn-server (started by this file on 127.0.0.1): three
 * identities build a network, every device sees the others in its map, nothing readable is
 * stored, endpoint updates propagate live, removal revokes and rotates the key, and the server
 * refuses non-owners' writes of owner records.
 */
import { waitForMap } from '../helpers/control.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordsQuery } from '@tbd54566975/dwn-sdk-js';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { initProfile } from '../../src/identity/profile.js';
import { DwnError } from '../../src/errors.js';
import { DwnClient } from '../../src/dwn/client.js';
import { DwnHttpRpc } from '../../src/dwn/rpc-http.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer, approvePeer, removePeer } from '../../src/control/peer-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import { decryptJwe, deriveNetworkKey, encryptJson } from '../../src/control/crypto.js';
import { Keyring } from '../../src/control/keyring.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI, ROLE_MEMBER, ROLE_NODE } from '../../src/control/protocol.js';
import type { ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
const NET_NAME = `meshnet-${tag}`;

interface Node {
  name: string;
  ctx: ControlContext;
  client?: ControlClient;
}

let dwn: TestDwn;
let root: string;
let owner: Node, dev: Node, member: Node, mdev: Node;
let networkId: string;
const devices = () => [owner, dev, mdev];

function mkNode(name: string): Node {
  const home = join(root, name);
  return { name, ctx: { home, profile: initProfile(home).profile } };
}

function hostnameOf(n: Node): string {
  return `host-${n.name}-${tag}`;
}

/** A distinctive public endpoint per device (TEST-NET-2, never routed). */
function endpointOf(i: number, port: number) {
  return {
    publicEndpoints: [{ address: `198.51.100.${i + 10}`, port, source: 'static' as const, priority: 5 }],
    localEndpoints: [`192.0.2.${i + 10}:${port}`],
    natType: 'endpoint-independent' as const,
    discoKey: Buffer.alloc(32, i + 1).toString('base64'),
  };
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-mesh-${tag}-`));
  dwn = await startTestDwn();
  owner = mkNode('owner');
  dev = mkNode('dev');
  member = mkNode('member');
  mdev = mkNode('mdev');
  const created = await createNetwork(owner.ctx, { name: NET_NAME, endpoint: dwn.url, nodeInfo: { hostname: hostnameOf(owner) } });
  networkId = created.networkId;
  await addPeer(owner.ctx, dev.ctx.profile.did);
  await addPeer(owner.ctx, member.ctx.profile.did, { member: true });
  await joinNetwork(dev.ctx, { anchor: owner.ctx.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: hostnameOf(dev) } });
  await joinNetwork(member.ctx, { anchor: owner.ctx.profile.did, networkId, endpoint: dwn.url });
  const req = await addPeer(member.ctx, mdev.ctx.profile.did);
  assert.equal(req.role, 'request');
  const approved = await approvePeer(owner.ctx, mdev.ctx.profile.did);
  assert.equal(approved.role, 'node');
  await joinNetwork(mdev.ctx, { anchor: owner.ctx.profile.did, networkId, endpoint: dwn.url, nodeInfo: { hostname: hostnameOf(mdev) } });
  for (const n of devices()) {
    n.client = await ControlClient.open({ ctx: n.ctx });
    n.client.start();
  }
});

after(async () => {
  for (const n of [owner, dev, member, mdev]) await n?.client?.stop();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('a network of three identities on a real DWN', () => {
  test('every device writes nodeInfo and endpoint and sees the other two in its map', async () => {
    const all = devices();
    for (const [i, n] of all.entries()) await n.client!.publishEndpoint(endpointOf(i, 41000 + i));
    for (const [i, n] of all.entries()) {
      const others = all.filter((x) => x !== n);
      const m = await waitForMap(
        n.client!,
        (m) => others.every((o) => m.peers.some((p) => p.did === o.ctx.profile.did && p.endpoints.length > 0 && p.hostname === hostnameOf(o))),
        5000,
      );
      assert.equal(m.peers.length, 2, `${n.name} sees exactly two peers`);
      assert.equal(m.self?.did, n.ctx.profile.did);
      assert.equal(m.network.name, NET_NAME);
      assert.equal(m.epoch, 0);
      for (const p of m.peers) {
        const j = all.indexOf(all.find((x) => x.ctx.profile.did === p.did)!);
        assert.deepEqual(p.endpoints, [{ address: `198.51.100.${j + 10}`, port: 41000 + j, priority: 5, source: 'static' }]);
        assert.equal(p.discoKey, Buffer.alloc(32, j + 1).toString('base64'));
        assert.equal(p.online, true);
        assert.match(p.meshIP, /^10\.200\.\d+\.\d+$/);
        assert.match(p.wireguardKey, /^[A-Za-z0-9+/]{43}=$/);
      }
      assert.notEqual(m.self?.meshIP, undefined);
      void i;
    }
    // the member's device is owned by the member; the owner's devices by the owner
    const om = owner.client!.map!;
    assert.equal(om.peers.find((p) => p.did === mdev.ctx.profile.did)?.owner, member.ctx.profile.did);
    assert.equal(om.peers.find((p) => p.did === dev.ctx.profile.did)?.owner, owner.ctx.profile.did);
    // mesh IPs are unique
    const ips = [om.self!.meshIP, ...om.peers.map((p) => p.meshIP)];
    assert.equal(new Set(ips).size, 3);
    // the initial policy compiles to allow all
    assert.equal(om.filter.rules.length, 1);
    assert.equal(om.filter.rules[0]!.src.any, true);
  });

  test("the server's storage and anonymous queries show no plaintext", async () => {
    await waitForMap(owner.client!, (m) => m.peers.every((p) => p.endpoints.length > 0), 5000);
    const secrets = [
      NET_NAME,
      ...devices().map(hostnameOf),
      '198.51.100.', '192.0.2.',
      owner.client!.map!.self!.meshIP,
      ...owner.client!.map!.peers.map((p) => p.meshIP),
    ];
    const files = readdirSync(dwn.dataDir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name));
    assert.ok(files.some((f) => f.endsWith('dwn.db')), 'storage found');
    // positive control: the records are in these files (as JWEs, signed by the owner)
    const everything = Buffer.concat(files.map((f) => readFileSync(f)));
    assert.ok(encodings('"ciphertext"').some((form) => everything.includes(form)), 'JWE data stored');
    assert.ok(everything.includes(Buffer.from(owner.ctx.profile.did)), 'owner DID stored');
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const s of secrets) {
        for (const form of encodings(s)) assert.equal(bytes.includes(form), false, `"${s}" found in ${f}`);
      }
    }
    // nothing is published: an anonymous query sees no record
    const q = await RecordsQuery.create({ filter: { protocol: PROTOCOL_URI, protocolPath: PATHS.nodeInfo } });
    const { reply } = await new DwnHttpRpc(dwn.url).processMessage(owner.ctx.profile.did, q.message);
    assert.equal(reply.entries?.length ?? 0, 0);
  });

  test('non-owners cannot write network, node or aclPolicy records (the server refuses)', async () => {
    const body = await encryptJson({ x: 1 }, [{ kid: 'x', publicKey: dev.ctx.profile.keys.xPublic }]);
    const target = owner.ctx.profile.did;
    const mkClient = (n: Node) => new DwnClient(dwn.url, target, { did: n.ctx.profile.did, edSeed: n.ctx.profile.keys.edSeed });
    const devNode = owner.client!.map!; // for contexts
    void devNode;
    const attempts: { who: Node; path: string; role?: string; parent?: string; recipient?: string }[] = [
      { who: dev, path: PATHS.network },
      { who: dev, path: PATHS.node, role: ROLE_NODE, parent: networkId, recipient: dev.ctx.profile.did },
      { who: dev, path: PATHS.node, parent: networkId, recipient: mdev.ctx.profile.did },
      { who: dev, path: PATHS.aclPolicy, role: ROLE_NODE, parent: networkId },
      { who: dev, path: PATHS.aclPolicy, parent: networkId },
      { who: member, path: PATHS.node, role: ROLE_MEMBER, parent: networkId, recipient: member.ctx.profile.did },
      { who: member, path: PATHS.aclPolicy, role: ROLE_MEMBER, parent: networkId },
      { who: member, path: PATHS.keyDelivery, role: ROLE_MEMBER, parent: networkId, recipient: member.ctx.profile.did },
    ];
    for (const a of attempts) {
      await assert.rejects(
        mkClient(a.who).write({
          protocol: PROTOCOL_URI,
          protocolPath: a.path,
          data: body,
          dataFormat: DATA_FORMAT,
          ...(a.role ? { protocolRole: a.role } : {}),
          ...(a.parent ? { parentContextId: a.parent } : {}),
          ...(a.recipient ? { recipient: a.recipient } : {}),
          ...(a.path === PATHS.keyDelivery ? { tags: { epoch: 0 } } : {}),
        }),
        (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_REJECTED' && (e.status === 401 || e.status === 400),
        `${a.who.name} writing ${a.path}${a.role ? ` as ${a.role}` : ''} must be refused`,
      );
    }
    // a device cannot write under another device's node record
    const mdevNode = (await new DwnClient(dwn.url, target, { did: target, edSeed: owner.ctx.profile.keys.edSeed }).query({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS.node,
      recipient: mdev.ctx.profile.did,
    }))[0]!;
    await assert.rejects(
      mkClient(dev).write({ protocol: PROTOCOL_URI, protocolPath: PATHS.endpoint, data: body, dataFormat: DATA_FORMAT, parentContextId: mdevNode.contextId! }),
      (e: unknown) => e instanceof DwnError && e.status === 401,
    );
  });

  test('an endpoint update reaches the other devices’ maps in under 1 s (median of 20)', async () => {
    const samples: number[] = [];
    const watchers = [owner, mdev];
    const readsBefore = watchers.map((w) => w.client!.stats.requests.eventReads);
    for (let i = 0; i < 20; i++) {
      const port = 42000 + i;
      const seen = watchers.map((w) =>
        waitForMap(w.client!, (m) => m.peers.some((p) => p.did === dev.ctx.profile.did && p.endpoints[0]?.port === port), 5000).then(() => Date.now()),
      );
      const t0 = Date.now();
      await dev.client!.publishEndpoint(endpointOf(1, port));
      const times = await Promise.all(seen);
      samples.push(Math.max(...times) - t0);
    }
    samples.sort((a, b) => a - b);
    const median = (samples[9]! + samples[10]!) / 2;
    console.log(`# endpoint propagation over ${samples.length} updates: median ${median} ms, min ${samples[0]} ms, max ${samples.at(-1)} ms`);
    assert.ok(median < 1000, `median ${median} ms`);
    // the server's events carry the records' data (dwn/server-event-data.ts): no reads for them
    assert.deepEqual(watchers.map((w, i) => w.client!.stats.requests.eventReads - readsBefore[i]!), [0, 0], 'the devices read records their events carried');
  });

  test("a device's own rename is in its own map when the write returns, and in the others' soon after", async () => {
    const renamed = `renamed-${tag}`;
    await dev.client!.publishNodeInfo({ hostname: renamed, os: 'linux', version: '1' });
    // its own event brings nothing the session does not hold: the write itself must rebuild
    assert.equal(dev.client!.map?.self?.hostname, renamed);
    await waitForMap(owner.client!, (m) => m.peers.some((p) => p.did === dev.ctx.profile.did && p.hostname === renamed), 5000);
  });

  test('peer remove: gone from every map in under 5 s, epoch rotated, the removed device reads nothing new', async () => {
    const removed = mdev.ctx.profile.did;
    const t0 = Date.now();
    const keysBefore = (await ownerRecords()).map((r) => `${r.recordId}@${r.descriptor.messageTimestamp}`);
    const devBefore = dev.client!.stats.requests;
    const r = await removePeer(owner.ctx, removed);
    assert.deepEqual(r.removed, [removed]);
    assert.equal(r.epoch, 1);
    await Promise.all(
      [owner, dev].map((n) => waitForMap(n.client!, (m) => m.epoch === 1 && !m.peers.some((p) => p.did === removed) && m.peers.length === 1, 5000)),
    );
    const elapsed = Date.now() - t0;
    console.log(`# peer remove: dropped from every map ${elapsed} ms after the command started`);
    assert.ok(elapsed < 5000, `${elapsed} ms`);
    // the removed device's own control client loses its role and empties its map
    await waitForMap(mdev.client!, (m) => m.peers.length === 0 && m.self === null, 5000);
    // the remaining device re-encrypts its own records under the new epoch
    await waitForMap(dev.client!, () => true, 100);
    const deadline = Date.now() + 5000;
    let after: Awaited<ReturnType<typeof ownerRecords>> = [];
    while (Date.now() < deadline) {
      after = (await ownerRecords()).filter((x) => !keysBefore.includes(`${x.recordId}@${x.descriptor.messageTimestamp}`));
      const devOwn = after.filter((x) => x.descriptor.protocolPath === PATHS.endpoint || x.descriptor.protocolPath === PATHS.nodeInfo);
      if (devOwn.length >= 2) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(after.length >= 5, `records written after the removal: ${after.length}`);
    // the rotation cost the remaining device what changed, not a re-read of everything
    const devAfter = dev.client!.stats.requests;
    console.log(`# remaining device during the rotation: ${JSON.stringify({ eventReads: devAfter.eventReads - devBefore.eventReads, fullLoads: devAfter.fullLoads - devBefore.fullLoads, keyLoads: devAfter.keyLoads - devBefore.keyLoads })}`);
    assert.equal(devAfter.fullLoads, devBefore.fullLoads, 'a key rotation made the remaining device re-query everything');
    assert.ok(devAfter.eventReads - devBefore.eventReads <= after.length, `${devAfter.eventReads - devBefore.eventReads} reads for ${after.length} records written`);
    // everything the removed device could hold: its own key and the epoch-0 network key
    const ring = new Keyring(mdev.ctx.profile.keys);
    ring.addNetworkKey(0, deriveNetworkKey(owner.ctx.profile.keys.xPrivate, networkId, 0));
    const devRing = new Keyring(dev.ctx.profile.keys);
    devRing.addNetworkKey(1, deriveNetworkKey(owner.ctx.profile.keys.xPrivate, networkId, 1));
    for (const rec of after) {
      const data = new Uint8Array(Buffer.from(rec.encodedData!, 'base64url'));
      await assert.rejects(decryptJwe(data, ring, 'network-or-direct'), (e: unknown) => (e as { code?: string }).code === 'E_DECRYPT', `${rec.descriptor.protocolPath} readable by the removed device`);
      if (rec.descriptor.protocolPath !== PATHS.keyDelivery) {
        const d = await decryptJwe(data, devRing, 'network'); // and a remaining device can read it
        assert.equal(d.epoch, 1);
      }
    }
  });
});

/**
 * A string as it could appear in storage: raw, or inside base64/base64url text at any of the
 * three byte alignments (the core characters that do not depend on neighbouring bytes).
 */
function encodings(s: string): Buffer[] {
  const raw = Buffer.from(s);
  const out = [raw];
  for (let k = 0; k < 3; k++) {
    for (const enc of ['base64', 'base64url'] as const) {
      const text = Buffer.concat([Buffer.alloc(k), raw]).toString(enc).replace(/=+$/, '');
      const skip = Math.ceil((k * 4) / 3);
      const core = text.slice(skip, text.length - 2);
      if (core.length >= 6) out.push(Buffer.from(core));
    }
  }
  return out;
}

async function ownerRecords() {
  const c = new DwnClient(dwn.url, owner.ctx.profile.did, { did: owner.ctx.profile.did, edSeed: owner.ctx.profile.keys.edSeed });
  return c.query({ protocol: PROTOCOL_URI, contextId: networkId });
}

/**
 * A key rotation the DWN cuts short is finished, not left half done. The owner removes a device
 * through its daemon's control client; once the new key is delivered, the DWN (a proxy in front
 * of the real dwn-server) stops taking the owner's writes, so `peer remove` fails with the
 * network still at the old epoch — which the removed device holds — and its records still on
 * the DWN. Meanwhile no one's map loses anyone but the removed device. Once the DWN answers
 * again, the owner's daemon finishes the rotation by itself.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { DwnProxy } from '../helpers/dwn-proxy.js';
import { waitForMap } from '../helpers/control.js';
import { initProfile } from '../../src/identity/profile.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer, removePeerIn } from '../../src/control/peer-ops.js';
import { unfinishedRotation } from '../../src/control/key-rotation.js';
import { nodeRecords } from '../../src/control/model.js';
import { readableKinds } from '../../src/control/reader.js';
import { ControlClient } from '../../src/control/control-client.js';
import { NetworkSession, type ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let dwn: TestDwn;
let proxy: DwnProxy;
let root: string;
let owner: ControlContext, a: ControlContext, b: ControlContext, x: ControlContext;
const clients: ControlClient[] = [];

async function open(ctx: ControlContext): Promise<ControlClient> {
  const c = await ControlClient.open({ ctx, backoff: { initialMs: 200, maxMs: 1000 }, cache: false, reencryptWithinMs: 2000 });
  clients.push(c);
  c.start();
  return c;
}

/** The owner's view of the DWN now, read afresh. */
async function ownerView<T>(fn: (s: NetworkSession) => T): Promise<T> {
  const s = await NetworkSession.open(owner);
  try {
    await s.load(readableKinds('owner'));
    return fn(s);
  } finally {
    await s.close();
  }
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-rotcut-${tag}-`));
  dwn = await startTestDwn();
  proxy = await DwnProxy.start({ upstream: dwn.url });
  const mk = (n: string): ControlContext => {
    const home = join(root, n);
    return { home, profile: initProfile(home).profile };
  };
  [owner, a, b, x] = [mk('owner'), mk('a'), mk('b'), mk('x')];
  // everyone goes through the proxy
  const { networkId } = await createNetwork(owner, { name: `rotcut-${tag}`, endpoint: proxy.url });
  for (const [d, name] of [
    [a, 'a'],
    [b, 'b'],
    [x, 'x'],
  ] as const) {
    await addPeer(owner, d.profile.did);
    await joinNetwork(d, { anchor: owner.profile.did, networkId, endpoint: proxy.url, nodeInfo: { hostname: `${name}-${tag}` } });
  }
});

after(async () => {
  for (const c of clients) await c.stop().catch(() => undefined);
  await proxy?.close();
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

test("a rotation the DWN cut short is finished by the owner's daemon", async () => {
  const oc = await open(owner);
  const ac = await open(a);
  await waitForMap(ac, (m) => m.peers.some((p) => p.did === x.profile.did) && m.peers.some((p) => p.did === b.profile.did), 15_000);
  await waitForMap(oc, (m) => m.peers.length === 3, 15_000);

  // once the new key is delivered, the DWN refuses the owner's writes: the tombstone and the key
  // deliveries land, the re-writes of the owner's records and the new network record do not
  const ownerDid = owner.profile.did;
  let delivered = false;
  let refused = 0;
  const off = proxy.refuse((r) => {
    if (r.author !== ownerDid || r.dwnMethod !== 'RecordsWrite') return false;
    if (r.protocolPath === 'network/keyDelivery') {
      delivered = true;
      return false;
    }
    if (delivered) refused++;
    return delivered;
  });
  try {
    await assert.rejects(oc.ownerOp((s) => removePeerIn(s, x.profile.did)));
  } finally {
    off();
  }
  assert.ok(refused >= 1, 'nothing was refused: the test injected nothing');

  // the network is half rotated: the old epoch still, the owner's records under it, the removed
  // device's records still there — and the owner's daemon knows what is left
  const half = await oc.ownerOp(async (s) => ({ left: unfinishedRotation(s), epoch: s.network().data.epoch }));
  assert.equal(half.epoch, 0);
  assert.ok(half.left && half.left.bump && half.left.rewrites >= 3 && half.left.deletions >= 1, `left: ${JSON.stringify(half.left)}`);
  // the removed device is out of every map at once (the tombstone came first), the others stay
  await waitForMap(ac, (m) => !m.peers.some((p) => p.did === x.profile.did) && m.peers.some((p) => p.did === b.profile.did), 10_000);

  // the DWN answers again: the owner's daemon finishes the rotation on its own
  const deadline = Date.now() + 40_000;
  while (oc.stats.finishedRotations < 1 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  assert.equal(oc.stats.finishedRotations, 1, `the owner's daemon did not finish the rotation (last error: ${oc.stats.lastError})`);
  // a fresh look at the DWN: the new epoch, every node record under it, the removed device's gone
  const done = await ownerView((s) => ({
    epoch: s.network().data.epoch,
    left: unfinishedRotation(s),
    nodes: nodeRecords(s.set, s.joined.networkId, s.joined.anchor).map((n) => [n.data.did, n.epoch] as const),
  }));
  assert.equal(done.epoch, 1);
  assert.equal(done.left, undefined);
  assert.ok(!done.nodes.some(([did]) => did === x.profile.did), "the removed device's node record is gone");
  assert.equal(done.nodes.length, 3);
  assert.ok(done.nodes.every(([, epoch]) => epoch === 1), `node records under: ${JSON.stringify(done.nodes.map((e) => e[1]))}`);
  // and the devices keep each other
  await waitForMap(ac, (m) => m.epoch === 1 && m.peers.some((p) => p.did === b.profile.did), 10_000);
});

/**
 * meshd's WireGuard against the reference, for real, in network namespaces: `meshd engine`
 * (from a wg-quick file) on one host, wireguard-go configured with `wg` (or a second meshd) on
 * the other, over a veth link. Each pairing: either side initiating, ping, 100 MB each way with
 * matching SHA-256, a rekey every ~1.2 s (MESHD_WG_TIMER_SCALE) in the middle of a transfer
 * without breaking the TCP connection, and a peer removed at runtime (SIGHUP reload) no longer
 * receiving. The whole file runs twice: native crypto and MESHD_PURE_TS=1.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { ping, WireguardGo, wgKeyPair, type Netns, type TwoHosts } from '../../src/lab/index.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { LAB_PREREQS, twoHostsFor } from './helpers.js';
import { MeshdNode, transfer } from './wg-engine-node.js';

const PREREQS = [...LAB_PREREQS, 'tun', 'wireguard-go', 'wg'] as const;
const MB100 = 100 * 1024 * 1024;

async function pingOk(ns: Netns, addr: string): Promise<void> {
  const p = await ping(ns, addr, { count: 3, timeoutMs: 5000 });
  assert.ok(p.ok && p.received > 0, `ping ${addr}: ${JSON.stringify(p)}`);
}

async function pingFails(ns: Netns, addr: string): Promise<void> {
  const p = await ping(ns, addr, { count: 2, timeoutMs: 1500 });
  assert.equal(p.received, 0, `ping ${addr} should fail: ${JSON.stringify(p)}`);
}

const PATHS: Array<{ name: string; env: Record<string, string> }> = [
  { name: 'native crypto', env: {} },
  { name: 'MESHD_PURE_TS=1', env: { MESHD_PURE_TS: '1' } },
];

interface Pairing {
  net: TwoHosts;
  meshd: MeshdNode;
  other: { ip: string; publicKey: string; ns: Netns };
  /** Remove meshd at the other side, or the other at meshd's side. */
  stopAll(): Promise<void>;
}

async function meshdWithWireguardGo(t: TestContext, env: Record<string, string>, meshdInitiates: boolean): Promise<Pairing & { wg: WireguardGo }> {
  const net = await twoHostsFor(t);
  const wgKeys = wgKeyPair();
  const meshdKeys = wgKeyPair();
  const wg = await WireguardGo.start(net.b.ns, { address: '10.77.0.2/24', privateKey: wgKeys.privateKey });
  const meshd = await MeshdNode.start(net.a.ns, {
    address: '10.77.0.1/24',
    env,
    keys: meshdKeys,
    // the side that initiates knows the other's endpoint; the other learns it from the handshake
    peers: [{ publicKey: wg.publicKey, allowedIps: ['10.77.0.2/32'], ...(meshdInitiates ? { endpoint: `${net.b.addr}:51820` } : {}) }],
  });
  await wg.setPeer({ publicKey: meshd.publicKey, allowedIps: ['10.77.0.1/32'], ...(meshdInitiates ? {} : { endpoint: `${net.a.addr}:51820` }) });
  return {
    net,
    meshd,
    wg,
    other: { ip: '10.77.0.2', publicKey: wg.publicKey, ns: net.b.ns },
    stopAll: async () => {
      await meshd.stop();
      await wg.stop();
    },
  };
}

async function meshdWithMeshd(t: TestContext, env: Record<string, string>): Promise<Pairing & { b: MeshdNode }> {
  const net = await twoHostsFor(t);
  const ka = wgKeyPair();
  const kb = wgKeyPair();
  const a = await MeshdNode.start(net.a.ns, {
    address: '10.77.0.1/24',
    env,
    keys: ka,
    peers: [{ publicKey: kb.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${net.b.addr}:51820` }],
  });
  const b = await MeshdNode.start(net.b.ns, { address: '10.77.0.2/24', env, keys: kb, peers: [{ publicKey: ka.publicKey, allowedIps: ['10.77.0.1/32'] }] });
  return {
    net,
    meshd: a,
    b,
    other: { ip: '10.77.0.2', publicKey: kb.publicKey, ns: net.b.ns },
    stopAll: async () => {
      await a.stop();
      await b.stop();
    },
  };
}

for (const path of PATHS) {
  describe(`meshd ↔ wireguard-go (${path.name})`, () => {
    test('meshd initiates: ping, 100 MB each way with matching SHA-256', async (t) => {
      if (!requirePrereqs(t, [...PREREQS])) return;
      const p = await meshdWithWireguardGo(t, path.env, true);
      await pingOk(p.net.a.ns, '10.77.0.2');
      const up = await transfer(p.net.a.ns, p.net.b.ns, '10.77.0.2', MB100);
      const down = await transfer(p.net.b.ns, p.net.a.ns, '10.77.0.1', MB100, 5202);
      t.diagnostic(`meshd→wireguard-go ${up.mbps.toFixed(0)} Mbit/s, wireguard-go→meshd ${down.mbps.toFixed(0)} Mbit/s`);
      const [peer] = await p.wg.peers();
      assert.equal(peer!.endpoint, `${p.net.a.addr}:51820`);
      assert.ok(peer!.latestHandshake > 0);
      const s = await p.meshd.stats();
      assert.ok(s.peers[0]!.rxBytes > MB100 && s.peers[0]!.txBytes > MB100);
      await p.stopAll();
    });

    test('wireguard-go initiates: ping and 100 MB with matching SHA-256', async (t) => {
      if (!requirePrereqs(t, [...PREREQS])) return;
      const p = await meshdWithWireguardGo(t, path.env, false);
      await pingOk(p.net.b.ns, '10.77.0.1');
      await transfer(p.net.b.ns, p.net.a.ns, '10.77.0.1', MB100);
      const s = await p.meshd.stats();
      assert.equal(s.peers[0]!.publicKey, p.wg.publicKey);
      await p.stopAll();
    });

    test('rekeys during a transfer keep the connection (timers scaled to 1 %)', async (t) => {
      if (!requirePrereqs(t, [...PREREQS])) return;
      const p = await meshdWithWireguardGo(t, { ...path.env, MESHD_WG_TIMER_SCALE: '0.01' }, true);
      await pingOk(p.net.a.ns, '10.77.0.2');
      const before = p.meshd.count('handshake-complete');
      await transfer(p.net.a.ns, p.net.b.ns, '10.77.0.2', MB100 / 2);
      await transfer(p.net.b.ns, p.net.a.ns, '10.77.0.1', MB100 / 2, 5202);
      const rekeys = p.meshd.count('handshake-complete') - before;
      assert.ok(rekeys >= 1, `handshakes during the transfers: ${rekeys}`);
      t.diagnostic(`rekeys during transfers: ${rekeys}`);
      await p.stopAll();
    });

    test('a peer removed at runtime stops receiving', async (t) => {
      if (!requirePrereqs(t, [...PREREQS])) return;
      const p = await meshdWithWireguardGo(t, path.env, true);
      await pingOk(p.net.a.ns, '10.77.0.2');
      await p.meshd.setPeers([]);
      await pingFails(p.net.b.ns, '10.77.0.1');
      const s = await p.meshd.stats();
      assert.equal(s.peers.length, 0);
      assert.ok(s.counters.drops['unknown-receiver']! + s.counters.drops['unknown-peer']! > 0, JSON.stringify(s.counters.drops));
      // and back
      await p.meshd.setPeers([{ publicKey: p.wg.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${p.net.b.addr}:51820` }]);
      await pingOk(p.net.a.ns, '10.77.0.2');
      await p.stopAll();
    });
  });

  describe(`meshd ↔ meshd (${path.name})`, () => {
    test('ping, 100 MB each way, rekeys, removal', async (t) => {
      if (!requirePrereqs(t, [...PREREQS])) return;
      const p = await meshdWithMeshd(t, { ...path.env, MESHD_WG_TIMER_SCALE: '0.01' });
      await pingOk(p.net.a.ns, '10.77.0.2');
      await pingOk(p.net.b.ns, '10.77.0.1');
      const before = p.meshd.count('handshake-complete');
      await transfer(p.net.a.ns, p.net.b.ns, '10.77.0.2', MB100);
      await transfer(p.net.b.ns, p.net.a.ns, '10.77.0.1', MB100, 5202);
      assert.ok(p.meshd.count('handshake-complete') - before >= 1, 'rekeyed during the transfers');
      await p.b.setPeers([]);
      await pingFails(p.net.a.ns, '10.77.0.2');
      await p.stopAll();
    });
  });
}

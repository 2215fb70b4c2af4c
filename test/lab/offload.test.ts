/**
 * The segmentation offloads at work between two `meshd engine`s in network namespaces: a TCP
 * transfer each way (SHA-256 checked on both ends) must go through every offload path — TUN
 * super-segments cut into packets and UDP GSO sends on the sending side, UDP GRO receives and
 * joined TUN writes on the receiving side — and with MESHD_NO_OFFLOAD=1 the same transfer must
 * work with every one of those counters at zero.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { wgKeyPair } from '../../src/lab/index.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { LAB_PREREQS, labFor, twoHostsFor } from './helpers.js';
import { MeshdNode, transfer } from './wg-engine-node.js';

const PREREQS = [...LAB_PREREQS, 'tun', 'native'] as const;
const MB = 1024 * 1024;
const GSO_FALLBACK = fileURLToPath(new URL('../fixtures/gso-fallback.js', import.meta.url));
/**
 * The tests of the offload paths ask for them whatever the suite's environment says: a run of
 * the suite with MESHD_NO_OFFLOAD=1 covers the plain paths everywhere else (and here in the
 * test that sets it).
 */
const OFFLOAD_ON = { MESHD_NO_OFFLOAD: '0' };

interface OffloadStats {
  tun: {
    rxPackets: number;
    rxSuperSegments: number;
    rxCutPackets: number;
    txPackets: number;
    txFrames: number;
    txJoinedFrames: number;
    txJoinedPackets: number;
    offload: { vnet: boolean; tso: boolean; uso: boolean };
  };
  udp: {
    txPackets: number;
    txMessages: number;
    txSegmented: number;
    rxCoalesced: number;
    offload: { gso: boolean; gro: boolean };
  };
}

interface CryptoStats {
  threads: number;
  workers: number;
  parallelBatches: number;
  parallelSlices: number;
  parallelPackets: number;
  serialBatches: number;
}

async function offloadStats(node: MeshdNode): Promise<OffloadStats> {
  return (await node.stats()) as unknown as OffloadStats;
}

async function pair(t: Parameters<typeof twoHostsFor>[0], env: Record<string, string>): Promise<{ a: MeshdNode; b: MeshdNode; ns: { a: MeshdNode['ns']; b: MeshdNode['ns'] } }> {
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
  return { a, b, ns: { a: net.a.ns, b: net.b.ns } };
}

describe('segmentation offload through a meshd pair', () => {
  test('a TCP transfer each way goes through TSO cutting, UDP GSO/GRO and joined TUN writes, intact', async (t) => {
    if (!requirePrereqs(t, [...PREREQS])) return;
    const { a, b, ns } = await pair(t, OFFLOAD_ON);
    await transfer(ns.a, ns.b, '10.77.0.2', 40 * MB, 5301); // a sends
    await transfer(ns.b, ns.a, '10.77.0.1', 40 * MB, 5302); // b sends
    for (const [name, node] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const s = await offloadStats(node);
      const ctx = `${name}: ${JSON.stringify(s)}`;
      const per = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(1) : '-');
      t.diagnostic(
        `${name}: ${per(s.tun.rxCutPackets, s.tun.rxSuperSegments)} packets per super-segment read, ` +
          `${per(s.udp.txPackets, s.udp.txMessages)} datagrams per UDP send message, ` +
          `${per(s.tun.txJoinedPackets, s.tun.txJoinedFrames)} segments per joined TUN write ` +
          `(${per(s.tun.txPackets, s.tun.txFrames)} packets per write overall)`,
      );
      assert.deepEqual(s.tun.offload, { vnet: true, tso: true, uso: true }, ctx);
      assert.deepEqual(s.udp.offload, { gso: true, gro: true }, ctx);
      // sending: the kernel hands over TCP super-segments, cut into several packets each
      assert.ok(s.tun.rxSuperSegments > 0, `super-segments read (${ctx})`);
      assert.ok(s.tun.rxCutPackets > 2 * s.tun.rxSuperSegments, `packets cut from them (${ctx})`);
      // … that leave as UDP GSO messages of several datagrams
      assert.ok(s.udp.txSegmented > 0, `segmented sends (${ctx})`);
      assert.ok(s.udp.txMessages < s.udp.txPackets / 2, `datagrams per send message > 2 (${ctx})`);
      // receiving: coalesced UDP buffers, and TCP segments joined into GRO frames on the TUN
      assert.ok(s.udp.rxCoalesced > 0, `coalesced receives (${ctx})`);
      assert.ok(s.tun.txJoinedFrames > 0, `joined TUN writes (${ctx})`);
      assert.ok(s.tun.txJoinedPackets > 2 * s.tun.txJoinedFrames, `segments per joined write (${ctx})`);
      assert.ok(s.tun.txFrames < s.tun.txPackets, `fewer writes than packets (${ctx})`);
    }
    await a.stop();
    await b.stop();
  });

  test('MESHD_CRYPTO_THREADS=2: batches are sealed and opened on two threads during a transfer, intact', async (t) => {
    if (!requirePrereqs(t, [...PREREQS])) return;
    if (process.env.MESHD_PURE_TS === '1') {
      t.skip('MESHD_PURE_TS=1: the engines use node:crypto, one packet at a time');
      return;
    }
    const env = { MESHD_CRYPTO_THREADS: '2', MESHD_CRYPTO_PARALLEL_BYTES: '8192' };
    const { a, b, ns } = await pair(t, env);
    await transfer(ns.a, ns.b, '10.77.0.2', 20 * MB, 5305); // SHA-256 checked on both ends
    await transfer(ns.b, ns.a, '10.77.0.1', 20 * MB, 5306);
    const after = await Promise.all([a.stats(), b.stats()]);
    for (const [i, name] of ['a', 'b'].entries()) {
      const c = (after[i] as unknown as { counters: { crypto: CryptoStats } }).counters.crypto;
      const ctx = `${name}: ${JSON.stringify(c)}`;
      t.diagnostic(`${name}: ${c.parallelBatches} batches on ${c.threads} threads (${(c.parallelPackets / Math.max(1, c.parallelBatches)).toFixed(1)} packets each), ${c.serialBatches} on one`);
      assert.equal(c.threads, 2, ctx);
      assert.equal(c.workers, 1, ctx);
      // a fresh engine: every shared batch is one of the transfers' (the handshake's are far too small)
      assert.ok(c.parallelBatches > 100, `parallel batches during the transfer (${ctx})`);
      assert.equal(c.parallelSlices, 2 * c.parallelBatches, ctx);
    }
    await a.stop();
    await b.stop();
  });

  test('MESHD_NO_OFFLOAD=1: the same transfer, one packet per datagram and per TUN write', async (t) => {
    if (!requirePrereqs(t, [...PREREQS])) return;
    const { a, b, ns } = await pair(t, { MESHD_NO_OFFLOAD: '1' });
    await transfer(ns.a, ns.b, '10.77.0.2', 10 * MB, 5303);
    await transfer(ns.b, ns.a, '10.77.0.1', 10 * MB, 5304);
    for (const node of [a, b]) {
      const s = await offloadStats(node);
      const ctx = JSON.stringify(s);
      assert.deepEqual(s.tun.offload, { vnet: false, tso: false, uso: false }, ctx);
      assert.deepEqual(s.udp.offload, { gso: false, gro: false }, ctx);
      assert.ok(s.tun.rxPackets > 1000 && s.udp.txPackets > 1000, ctx);
      assert.equal(s.tun.rxSuperSegments, 0, ctx);
      assert.equal(s.udp.txSegmented, 0, ctx);
      assert.equal(s.udp.txMessages, s.udp.txPackets, ctx);
      assert.equal(s.udp.rxCoalesced, 0, ctx);
      assert.equal(s.tun.txJoinedFrames, 0, ctx);
      assert.equal(s.tun.txFrames, s.tun.txPackets, ctx);
    }
    await a.stop();
    await b.stop();
  });

  test('a route whose MTU is below the segment size: refused segmented sends go one by one, counted, nothing lost', async (t) => {
    if (!requirePrereqs(t, [...PREREQS])) return;
    const lab = await labFor(t);
    const ns = await lab.addNamespace('gso');
    const proc = ns.node(GSO_FALLBACK, [lab.newWgIfName()], { label: 'gso-fallback', env: OFFLOAD_ON });
    await proc.exited;
    const line = proc.stdout().split('\n').find((l) => l.startsWith('{"event":"done"'));
    assert.ok(line, proc.output());
    const r = JSON.parse(line) as {
      offloadBefore: { gso: boolean };
      afterFirst: { offload: { gso: boolean }; stats: { txSegmentRefused: number } };
      stats: { txSegmented: number; txSegmentRefused: number; txPackets: number; txMessages: number };
      sent: number[];
      read: number;
      intact: boolean;
    };
    const ctx = JSON.stringify(r);
    assert.equal(r.offloadBefore.gso, true, ctx);
    assert.ok(r.afterFirst.stats.txSegmentRefused >= 1, `refusal counted: ${ctx}`);
    // EINVAL (unlike EIO, a property of the route) leaves GSO on: the next batch is refused too
    assert.equal(r.afterFirst.offload.gso, true, ctx);
    assert.deepEqual(r.sent, [40, 40], ctx);
    assert.equal(r.stats.txSegmentRefused, 2 * r.afterFirst.stats.txSegmentRefused, ctx);
    assert.equal(r.stats.txMessages, 80, `one message per datagram: ${ctx}`);
    assert.equal(r.read, 80, ctx);
    assert.ok(r.intact, ctx);
  });
});

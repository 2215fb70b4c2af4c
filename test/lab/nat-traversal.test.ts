/**
 * The magic socket through real NATs: two data-plane nodes in network namespaces
 * behind iptables NAT routers, a DERP relay with its STUN responder (`meshd relay serve`) and
 * coturn on the public host. Nodes know only each other's WireGuard and disco keys and the relay
 * (as from the DWN records): endpoints travel by STUN and call-me-maybe. Real packets only —
 * ICMP through the TUNs, paths read from each node's status().
 *
 * One lab for the file; the routers switch between cone and symmetric NAT between tests.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { boxPublicKey, generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import type { DataPlaneStatus } from '../../src/engine/dataplane.js';
import { CoturnStun, natLab, ping, type Host, type LabProcess, type NatLab } from '../../src/lab/index.js';
import { missingPrereqs, prereqsRequired, type Prereq } from '../helpers/prereqs.js';
import { LAB_PREREQS } from './helpers.js';

const DATAPLANE_NODE = fileURLToPath(new URL('../fixtures/dataplane-node.js', import.meta.url));
const RELAY_CLI = fileURLToPath(new URL('../fixtures/relay-cli.js', import.meta.url));
const PREREQS: Prereq[] = [...LAB_PREREQS, 'tun', 'native', 'turnserver'];
const PORT = 41641;
const RELAY_HOST = '198.51.100.10';
const RELAY_URL = `http://${RELAY_HOST}:3340/derp`;
const RELAY_STUN_PORT = 3478;
const COTURN_PORT = 3479;

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

interface Identity {
  privateKey: string;
  publicKey: string;
  discoPrivate: string;
  discoPublic: string;
  mesh: string;
}

function identity(mesh: string): Identity {
  const wg = generateBoxKeyPair();
  const disco = generateBoxKeyPair();
  return { privateKey: b64(wg.privateKey), publicKey: b64(wg.publicKey), discoPrivate: b64(disco.privateKey), discoPublic: b64(boxPublicKey(disco.privateKey)), mesh };
}

/** A relay as a node's config names it (with the pinned key fingerprint for https). */
interface RelayEntry {
  url: string;
  stunPort?: number;
  fingerprint?: string;
}

class DpNode {
  private constructor(
    readonly host: Host,
    readonly proc: LabProcess,
    readonly statusFile: string,
    readonly configFile: string,
    readonly tunName: string,
  ) {}

  static async start(net: NatLab, host: Host, me: Identity, peer: Identity, relay: RelayEntry = { url: RELAY_URL, stunPort: RELAY_STUN_PORT }): Promise<DpNode> {
    const lab = net.lab;
    const tunName = lab.newWgIfName();
    const configFile = lab.file(`${tunName}.json`);
    const statusFile = lab.file(`${tunName}.status.json`);
    writeFileSync(
      configFile,
      JSON.stringify({
        privateKey: me.privateKey,
        discoKey: me.discoPrivate,
        tunName,
        addresses: [`${me.mesh}/16`],
        listenPort: PORT,
        config: {
          peers: [{ publicKey: peer.publicKey, allowedIps: [`${peer.mesh}/32`], discoKey: peer.discoPublic, endpoints: [], homeRelay: relay.url }],
          relays: [relay],
          stunServers: [`${RELAY_HOST}:${COTURN_PORT}`],
        },
      }),
      { mode: 0o600 },
    );
    const proc = host.ns.node(DATAPLANE_NODE, [configFile, statusFile], { label: `dp-${host.role}-${tunName}` });
    await proc.waitFor(/"event":"ready"/, 15_000);
    return new DpNode(host, proc, statusFile, configFile, tunName);
  }

  status(): DataPlaneStatus {
    if (!existsSync(this.statusFile)) throw new Error('no status yet');
    return JSON.parse(readFileSync(this.statusFile, 'utf8')) as DataPlaneStatus;
  }

  /** A status written after this call (SIGUSR2 makes the node write one at once). */
  async freshStatus(): Promise<DataPlaneStatus> {
    const seq = (this.status() as DataPlaneStatus & { seq: number }).seq;
    this.proc.signal('SIGUSR2');
    const end = Date.now() + 3000;
    for (;;) {
      const s = this.status() as DataPlaneStatus & { seq: number };
      if (s.seq > seq) return s;
      if (Date.now() > end) throw new Error('no fresh status');
      await sleep(10);
    }
  }

  get peer(): DataPlaneStatus['peers'][number] {
    return this.status().peers[0]!;
  }

  /** Rewrite the node's config (as a new network map would) and make it apply it (SIGHUP). */
  async reconfigure(change: (config: { peers: unknown[] }) => void): Promise<void> {
    const file = JSON.parse(readFileSync(this.configFile, 'utf8')) as { config: { peers: unknown[] } };
    change(file.config);
    writeFileSync(this.configFile, JSON.stringify(file));
    const before = this.proc.stdout().split('config-applied').length;
    this.proc.signal('SIGHUP');
    const end = Date.now() + 5000;
    while (this.proc.stdout().split('config-applied').length === before) {
      if (Date.now() > end) throw new Error(`config not applied\n${this.proc.output().slice(-2000)}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const exit = await this.proc.stop(5000);
    assert.equal(exit.code, 0, `data plane exit ${JSON.stringify(exit)}\n${this.proc.output().slice(-3000)}`);
    const link = await this.host.ns.exec(['ip', 'link', 'show', this.tunName]);
    assert.notEqual(link.code, 0, `TUN ${this.tunName} left behind`);
  }
}

/** Ping b's mesh address from a every ~200 ms until cond() holds; returns the elapsed ms. */
async function pingUntil(from: DpNode, to: Identity, cond: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    await ping(from.host.ns, to.mesh, { count: 1, timeoutMs: 1000 });
    if (cond()) return Date.now() - t0;
    if (Date.now() - t0 > ms) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}\nA: ${JSON.stringify(from.peer)}\n${from.proc.output().slice(-2500)}`);
    }
    await sleep(150);
  }
}

/** Ping until one answers; returns the elapsed ms. */
async function firstReply(from: DpNode, to: Identity, ms: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await ping(from.host.ns, to.mesh, { count: 1, timeoutMs: 1000 });
    if (r.ok) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`no ping reply within ${ms} ms\nA: ${JSON.stringify(from.peer)}\n${from.proc.output().slice(-2500)}`);
  }
}

describe('NAT traversal in the lab', { timeout: 240_000 }, () => {
  let skip: string | null = null;
  let net: NatLab;
  let relayProc: LabProcess;
  const ida = identity('10.200.0.1');
  const idb = identity('10.200.0.2');
  let a: DpNode | null = null;
  let b: DpNode | null = null;

  /** Fresh nodes (stopping any a failed test left behind). */
  const startNodes = async (relay?: RelayEntry): Promise<void> => {
    await stopNodes().catch(() => undefined);
    // No NAT state from an earlier test may open a path for this one.
    await Promise.all([net.routers.a!.flushMappings(), net.routers.b!.flushMappings()]);
    [a, b] = await Promise.all([DpNode.start(net, net.a, ida, idb, relay), DpNode.start(net, net.b, idb, ida, relay)]);
  };
  const stopNodes = async (): Promise<void> => {
    const nodes = [a, b].filter((n): n is DpNode => n !== null);
    a = b = null;
    await Promise.all(nodes.map((n) => n.stop()));
  };

  before(async () => {
    const missing = missingPrereqs(PREREQS);
    if (missing.length > 0) {
      if (prereqsRequired) throw new Error(`missing prerequisite in CI: ${missing.join('; ')}`);
      skip = missing.join('; ');
      return;
    }
    net = await natLab({ a: 'cone', b: 'cone' });
    relayProc = net.relay.ns.node(RELAY_CLI, ['relay', 'serve', '--insecure-http', '--listen', `${RELAY_HOST}:3340`, '--stun-port', String(RELAY_STUN_PORT), '--json'], {
      label: 'relay',
    });
    await relayProc.waitFor(/relay-listening/, 15_000);
    await CoturnStun.start(net.relay.ns, { addr: RELAY_HOST, port: COTURN_PORT });
  });

  after(async () => {
    await stopNodes().catch(() => undefined);
    await net?.close();
  });

  test('cone NAT ↔ cone NAT: ping works and the path turns direct within 5 s', async (t) => {
    if (skip !== null) return t.skip(skip);
    await startNodes();
    const t0 = Date.now();
    await firstReply(a!, idb, 5000);
    const took = Date.now() - t0 + (await pingUntil(a!, idb, () => a!.peer.path === 'direct' && b!.peer.path === 'direct', 5000, 'direct paths'));
    t.diagnostic(`first reply and direct paths after ${took} ms`);
    if (process.env.NAT_DEBUG) writeFileSync('/tmp/nat-a.log', a!.proc.output() + '\n----\n' + b!.proc.output());
    assert.ok(took <= 5000, `direct after ${took} ms`);
    const sa = a!.status();
    assert.equal(sa.peers[0]!.endpoint, `${net.routers.b!.wanAddr}:${PORT}`, 'a talks to b’s public mapping');
    assert.equal(b!.peer.endpoint, `${net.routers.a!.wanAddr}:${PORT}`);
    assert.ok(sa.peers[0]!.lastHandshake > 0 && sa.peers[0]!.rxBytes > 0 && sa.peers[0]!.txBytes > 0);
    assert.equal(sa.natType, 'endpoint-independent');
    assert.equal(sa.udp, true);
    assert.equal(sa.homeRelay, RELAY_URL);
  });

  test('STUN through the node’s socket against coturn returns the mapping the router made', async (t) => {
    if (skip !== null) return t.skip(skip);
    for (const [node, router] of [
      [a!, net.routers.a!],
      [b!, net.routers.b!],
    ] as const) {
      const s = node.status();
      const coturn = s.stun.find((p) => p.server === `${RELAY_HOST}:${COTURN_PORT}`);
      assert.equal(coturn?.mapped, `${router.wanAddr}:${PORT}`, JSON.stringify(s.stun));
      assert.ok(s.publicEndpoints.includes(`${router.wanAddr}:${PORT}`), JSON.stringify(s.publicEndpoints));
      assert.ok(s.localEndpoints.includes(`${node.host.addr}:${PORT}`), JSON.stringify(s.localEndpoints));
    }
  });

  test('a new configuration is applied as a diff: an unchanged peer keeps its session and path', async (t) => {
    if (skip !== null) return t.skip(skip);
    const before = await a!.freshStatus();
    const peer = before.peers[0]!;
    assert.equal(peer.path, 'direct');
    const extra = identity('10.200.0.9');
    await a!.reconfigure((c) => {
      c.peers.push({ publicKey: extra.publicKey, allowedIps: ['10.200.0.9/32', '10.201.0.0/24'], discoKey: extra.discoPublic, endpoints: ['203.0.113.99:41641'] });
    });
    const after = await a!.freshStatus();
    assert.equal(after.peers.length, 2);
    const same = after.peers.find((p) => p.publicKey === peer.publicKey)!;
    assert.equal(same.lastHandshake, peer.lastHandshake, 'no new handshake');
    assert.equal(same.path, 'direct');
    assert.equal(same.endpoint, peer.endpoint);
    assert.ok(same.rxBytes >= peer.rxBytes);
    const routes = await a!.host.ns.run(['ip', 'route', 'show', 'dev', a!.tunName]);
    assert.match(routes, /10\.201\.0\.0\/24/, 'a route for the allowed IPs outside our prefix');
    assert.ok((await ping(a!.host.ns, idb.mesh, { count: 1, timeoutMs: 1000 })).ok);
    await a!.reconfigure((c) => {
      c.peers.pop();
    });
    const last = await a!.freshStatus();
    assert.equal(last.peers.length, 1);
    assert.equal(last.peers[0]!.lastHandshake, peer.lastHandshake);
    assert.doesNotMatch(await a!.host.ns.run(['ip', 'route', 'show', 'dev', a!.tunName]), /10\.201\.0\.0/);
  });

  test('NAT rebinding: traffic resumes within 10 s after a flush and after a new public address', async (t) => {
    if (skip !== null) return t.skip(skip);
    const router = net.routers.a!;
    await router.flushMappings();
    const flushGap = await firstReply(a!, idb, 10_000);
    assert.ok(flushGap <= 10_000, `after flush: ${flushGap} ms`);
    const oldWan = router.wanAddr;
    const newWan = await router.rebind();
    assert.notEqual(newWan, oldWan);
    const gap = await firstReply(a!, idb, 10_000);
    assert.ok(gap <= 10_000, `after rebind: ${gap} ms`);
    t.diagnostic(`traffic resumed ${flushGap} ms after the flush, ${gap} ms after the rebind`);
    // The direct path comes back on the new address (re-STUN after the path died).
    const back = await pingUntil(a!, idb, () => b!.peer.path === 'direct' && b!.peer.endpoint === `${newWan}:${PORT}` && a!.peer.path === 'direct', 30_000, 'direct path on the new address');
    t.diagnostic(`direct again ${back} ms later`);
    assert.ok(a!.status().publicEndpoints.includes(`${newWan}:${PORT}`));
    await stopNodes();
  });

  test('UDP blocked at one side: traffic goes over the relay; unblocked, the path upgrades to direct', async (t) => {
    if (skip !== null) return t.skip(skip);
    const router = net.routers.a!;
    await router.blockUdp();
    try {
      await startNodes();
      await firstReply(a!, idb, 10_000);
      await pingUntil(a!, idb, () => a!.status().udp === false, 5000, 'a seeing UDP blocked');
      const sa = a!.status();
      assert.equal(sa.peers[0]!.path, 'relay');
      assert.equal(sa.peers[0]!.relay, RELAY_URL);
      assert.equal(b!.peer.path, 'relay');
      assert.deepEqual(sa.publicEndpoints, []);
      const relayed = sa.counters.magicsock.relaySent;
      const r = await ping(a!.host.ns, idb.mesh, { count: 5, timeoutMs: 1000 });
      assert.equal(r.received, 5, 'relay carries every ping');
      assert.ok((await a!.freshStatus()).counters.magicsock.relaySent >= relayed + 5);
    } finally {
      await router.unblockUdp();
    }
    const pidA = a!.proc.pid;
    const upgrade = await pingUntil(a!, idb, () => a!.peer.path === 'direct' && b!.peer.path === 'direct', 20_000, 'upgrade to direct');
    t.diagnostic(`direct ${upgrade} ms after unblocking`);
    assert.equal(a!.proc.pid, pidA);
    assert.ok(a!.proc.running, 'nothing was restarted');
    assert.equal((await a!.freshStatus()).udp, true);
    await stopNodes();
  });

  for (const [kindA, kindB] of [
    ['symmetric', 'cone'],
    ['symmetric', 'symmetric'],
  ] as const) {
    test(`${kindA} NAT ↔ ${kindB} NAT: ping works and status names the path (relay here)`, async (t) => {
      if (skip !== null) return t.skip(skip);
      await net.routers.a!.setKind(kindA);
      await net.routers.b!.setKind(kindB);
      await startNodes();
      t.diagnostic(`first reply after ${await firstReply(a!, idb, 10_000)} ms`);
      const r = await ping(a!.host.ns, idb.mesh, { count: 10, timeoutMs: 1000 });
      assert.equal(r.received, 10);
      const sa = await a!.freshStatus();
      const sb = await b!.freshStatus();
      assert.equal(sa.natType, 'endpoint-dependent', 'two STUN servers saw different ports');
      assert.equal(sb.natType, kindB === 'cone' ? 'endpoint-independent' : 'endpoint-dependent');
      // A port-restricted NAT on the far side keeps a symmetric NAT's punches out: relay.
      for (const s of [sa, sb]) {
        assert.equal(s.peers[0]!.path, 'relay', JSON.stringify(s.peers[0]));
        assert.equal(s.peers[0]!.relay, RELAY_URL);
        assert.ok(s.counters.magicsock.relaySent > 0 && s.counters.magicsock.relayWgReceived > 0);
      }
      await stopNodes();
    });
  }

  test('symmetric NAT ↔ symmetric NAT through a TLS-only relay on port 443 pinned by fingerprint; another certificate is refused, visibly', async (t) => {
    if (skip !== null) return t.skip(skip);
    await net.routers.a!.setKind('symmetric');
    await net.routers.b!.setKind('symmetric');
    const serve = async (port: number, name: string) => {
      const proc = net.relay.ns.node(RELAY_CLI, ['relay', 'serve', '--listen', `${RELAY_HOST}:${port}`, '--no-stun', '--state-dir', net.lab.file(name)], { label: name });
      const m = await proc.waitFor(/relay listening: (\S+) \((HTTPS|plain HTTP)[^\n]*\nTLS key fingerprint (\S+)/, 15_000);
      return { proc, info: { url: m[1]!, tls: m[2] === 'HTTPS', fingerprint: m[3]! } };
    };
    const tls = await serve(443, 'relay-tls');
    const impostor = await serve(8443, 'relay-impostor'); // its own key: another certificate
    try {
      assert.equal(tls.info.tls, true);
      assert.equal(tls.info.url, `https://${RELAY_HOST}/derp`, 'port 443 needs no port in the URL');
      await startNodes({ url: tls.info.url, fingerprint: tls.info.fingerprint });
      t.diagnostic(`first reply over the TLS relay after ${await firstReply(a!, idb, 15_000)} ms`);
      const r = await ping(a!.host.ns, idb.mesh, { count: 5, timeoutMs: 1000 });
      assert.equal(r.received, 5);
      for (const s of [await a!.freshStatus(), await b!.freshStatus()]) {
        assert.equal(s.peers[0]!.path, 'relay');
        assert.equal(s.peers[0]!.relay, tls.info.url);
      }
      // the same pin for a relay that presents another certificate: refused, and the status says why
      await a!.reconfigure((c) => {
        const cfg = c as { peers: { homeRelay?: string }[]; relays: RelayEntry[] };
        cfg.relays = [{ url: impostor.info.url, fingerprint: tls.info.fingerprint }];
        for (const p of cfg.peers) p.homeRelay = impostor.info.url;
      });
      const end = Date.now() + 10_000;
      let refused: { state: string; lastError?: string } | undefined;
      while (Date.now() < end && !refused?.lastError) {
        refused = (await a!.freshStatus()).relays.find((x) => x.url === impostor.info.url);
        await sleep(200);
      }
      assert.ok(refused, 'the impostor relay is in the status');
      assert.notEqual(refused.state, 'connected');
      assert.match(refused.lastError ?? '', /fingerprint|pinned|certificate/i);
      assert.ok(!impostor.proc.stdout().includes('"accepts":1'), 'no login reached the impostor');
    } finally {
      await stopNodes();
      await Promise.all([tls.proc.stop(2000), impostor.proc.stop(2000)]);
    }
  });

  test('meshd netcheck: UDP, public address, mapping behaviour and relay latency behind each NAT', async (t) => {
    if (skip !== null) return t.skip(skip);
    const router = net.routers.a!;
    for (const kind of ['symmetric', 'cone'] as const) {
      await router.setKind(kind);
      const proc = net.a.ns.node(RELAY_CLI, ['netcheck', '--relay', `${RELAY_URL}#stun=${RELAY_STUN_PORT}`, '--stun', `${RELAY_HOST}:${COTURN_PORT}`, '--json'], {
        label: `netcheck-${kind}`,
      });
      const exit = await proc.exited;
      assert.equal(exit.code, 0, proc.output());
      const r = JSON.parse(proc.stdout()) as {
        udp: boolean;
        publicAddresses: string[];
        mappingVariesByDestination: boolean | null;
        relays: { url: string; stunRttMs?: number; latencyMs?: number }[];
        preferredRelay: string;
      };
      assert.equal(r.udp, true);
      assert.deepEqual(r.publicAddresses, [router.wanAddr]);
      assert.equal(r.mappingVariesByDestination, kind === 'symmetric');
      assert.equal(r.relays[0]!.url, RELAY_URL);
      assert.equal(typeof r.relays[0]!.stunRttMs, 'number');
      assert.equal(typeof r.relays[0]!.latencyMs, 'number');
      assert.equal(r.preferredRelay, RELAY_URL);
    }
    await router.blockUdp();
    try {
      const proc = net.a.ns.node(RELAY_CLI, ['netcheck', '--relay', RELAY_URL, '--timeout', '500'], { label: 'netcheck-blocked' });
      assert.equal((await proc.exited).code, 0, proc.output());
      assert.match(proc.stdout(), /UDP: no/);
      assert.match(proc.stdout(), /Public address: unknown/);
      assert.match(proc.stdout(), /relay [\d.]+ ms/, 'the relay still answers over TCP');
    } finally {
      await router.unblockUdp();
    }
  });
});

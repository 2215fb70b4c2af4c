/**
 * The lab harness itself, for real, in namespaces: links carry packets, NAT routers map the way
 * their kind says, UDP blocking spares TCP, the reference peers (wireguard-go, coturn, iperf3)
 * work, and nothing of a run — namespace, process, WireGuard socket, work directory — survives its
 * end, whichever way the run ends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CoturnStun,
  listNetns,
  parseLabName,
  measureWireguardGoThroughput,
  ping,
  sourcesSeen,
  startTcpEcho,
  startUdpEcho,
  sweepLeftovers,
  tcpProbe,
  udpProbe,
  WireguardGo,
  wireguardGoPair,
} from '../../src/lab/index.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { LAB_PREREQS, labFor, natLabFor, processGone, twoHostsFor } from './helpers.js';

const LAB_CHILD = fileURLToPath(new URL('./fixtures/lab-child.js', import.meta.url));

/** "ip:port" → [ip, port] */
function split(ep: string): [string, number] {
  const i = ep.lastIndexOf(':');
  return [ep.slice(0, i), Number(ep.slice(i + 1))];
}

describe('lab: links and NAT', () => {
  test('two hosts on one link reach each other, and nothing else', async (t) => {
    if (!requirePrereqs(t, LAB_PREREQS)) return;
    const net = await twoHostsFor(t);
    assert.ok(net.a.ns.name.length <= 15 && net.b.ns.name.length <= 15);
    const there = await ping(net.a.ns, net.b.addr, { count: 2 });
    assert.equal(there.ok, true);
    assert.equal(there.received, 2);
    assert.ok(there.rttMs !== undefined && there.rttMs >= 0);
    const back = await ping(net.b.ns, net.a.addr);
    assert.equal(back.ok, true);
    const nobody = await ping(net.a.ns, '198.51.100.99', { timeoutMs: 1000 });
    assert.equal(nobody.ok, false);
    // The TCP fallback (for machines without iputils-ping) agrees.
    const tcp = await ping(net.a.ns, net.b.addr, { method: 'tcp', count: 2 });
    assert.deepEqual([tcp.ok, tcp.received, tcp.method], [true, 2, 'tcp']);
    const tcpNobody = await ping(net.a.ns, '198.51.100.99', { method: 'tcp', timeoutMs: 500 });
    assert.equal(tcpNobody.ok, false);
  });

  test('behind a cone NAT the public host sees the router WAN address; without NAT the host itself', async (t) => {
    if (!requirePrereqs(t, LAB_PREREQS)) return;
    const net = await natLabFor(t, { a: 'cone', b: 'none' });
    const router = net.routers.a!;
    assert.match(net.a.addr, /^192\.168\.\d+\.\d+$/);
    assert.equal(net.routers.b, undefined);
    const echo = await startUdpEcho(net.relay.ns, `${net.relay.addr}:7000`);
    const [fromA] = await udpProbe(net.a.ns, { bind: '0.0.0.0:5000', targets: [`${net.relay.addr}:7000`] });
    const [fromB] = await udpProbe(net.b.ns, { bind: '0.0.0.0:5001', targets: [`${net.relay.addr}:7000`] });
    assert.equal(fromA?.ok, true);
    assert.equal(fromB?.ok, true);
    // The echo answers with the source it saw: a's packets left through the router.
    const [seenIp, seenPort] = split(fromA!.reply!.toString());
    assert.equal(seenIp, router.wanAddr);
    assert.notEqual(seenIp, net.a.addr);
    assert.equal(seenPort, 5000, 'a cone (MASQUERADE) NAT keeps a free source port');
    assert.equal(fromB!.reply!.toString(), `${net.b.addr}:5001`);
    assert.deepEqual(sourcesSeen(echo), [`${router.wanAddr}:5000`, `${net.b.addr}:5001`]);
    // Unsolicited traffic from the internet does not reach the LAN host.
    const inbound = await udpProbe(net.relay.ns, { targets: [`${net.a.addr}:5000`], timeoutMs: 500 });
    assert.equal(inbound[0]?.ok, false);
  });

  test('symmetric NAT maps per destination, cone does not; flush and rebind change mappings', async (t) => {
    if (!requirePrereqs(t, LAB_PREREQS)) return;
    const net = await natLabFor(t, { a: 'cone', b: 'symmetric' });
    await startUdpEcho(net.relay.ns, `${net.relay.addr}:7000`);
    await startUdpEcho(net.relay.ns, `${net.relay.addr}:7001`);
    const targets = [`${net.relay.addr}:7000`, `${net.relay.addr}:7001`];
    const mapped = async (host: typeof net.a): Promise<string[]> =>
      (await udpProbe(host.ns, { bind: '0.0.0.0:5000', targets })).map((r) => {
        assert.equal(r.ok, true, `${host.role} → ${r.to} answered`);
        return r.reply!.toString();
      });

    const cone = await mapped(net.a);
    assert.equal(cone[0], cone[1], 'cone: one mapping for both destinations');
    assert.equal(split(cone[0]!)[0], net.routers.a!.wanAddr);

    const sym = await mapped(net.b);
    assert.equal(split(sym[0]!)[0], net.routers.b!.wanAddr);
    assert.equal(split(sym[1]!)[0], net.routers.b!.wanAddr);
    assert.notEqual(split(sym[0]!)[1], split(sym[1]!)[1], 'symmetric: a port per destination');
    // The same flow keeps its mapping while it lives…
    assert.deepEqual(await mapped(net.b), sym);
    // …and gets a new one once the router forgot it.
    await net.routers.b!.flushMappings();
    const symAfter = await mapped(net.b);
    assert.notEqual(symAfter[0], sym[0]);

    const oldWan = net.routers.a!.wanAddr;
    const newWan = await net.routers.a!.rebind();
    assert.notEqual(newWan, oldWan);
    assert.equal(net.routers.a!.wanAddr, newWan);
    const coneAfter = await mapped(net.a);
    assert.equal(coneAfter[0], `${newWan}:5000`);
  });

  test('blocking UDP on a router stops UDP while TCP still passes; unblocking restores it', async (t) => {
    if (!requirePrereqs(t, LAB_PREREQS)) return;
    const net = await natLabFor(t, { a: 'cone', b: 'none' });
    const router = net.routers.a!;
    await startUdpEcho(net.relay.ns, `${net.relay.addr}:7000`);
    await startTcpEcho(net.relay.ns, `${net.relay.addr}:7100`);
    const udp = async (): Promise<boolean> =>
      (await udpProbe(net.a.ns, { targets: [`${net.relay.addr}:7000`], timeoutMs: 800 }))[0]?.ok === true;

    assert.equal(await udp(), true);
    await router.blockUdp();
    assert.equal(router.udpBlocked, true);
    assert.equal(await udp(), false);
    const tcp = await tcpProbe(net.a.ns, `${net.relay.addr}:7100`);
    assert.equal(tcp.ok, true);
    assert.equal(split(tcp.reply!.trim())[0], router.wanAddr, 'TCP goes through the NAT too');
    await router.unblockUdp();
    assert.equal(await udp(), true);
  });
});

describe('lab: reference peers', () => {
  test('wireguard-go ↔ wireguard-go: packets through the tunnel both ways', async (t) => {
    if (!requirePrereqs(t, [...LAB_PREREQS, 'tun', 'wireguard-go', 'wg'])) return;
    const net = await twoHostsFor(t);
    const { a, b } = await wireguardGoPair(net);
    assert.match(a.publicKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(a.publicKey, b.publicKey);
    assert.ok(a.ifname.length <= 15 && a.ifname !== b.ifname);
    assert.ok(existsSync(a.socketPath));
    const there = await ping(net.a.ns, b.ip, { count: 3 });
    const back = await ping(net.b.ns, a.ip, { count: 3 });
    assert.equal(there.received, 3);
    assert.equal(back.received, 3);
    const [peerOfA] = await a.peers();
    assert.equal(peerOfA?.publicKey, b.publicKey);
    assert.ok(peerOfA!.latestHandshake > 0, 'handshake done');
    assert.ok(peerOfA!.rxBytes > 0 && peerOfA!.txBytes > 0);
    assert.equal(peerOfA!.endpoint, `${net.b.addr}:51820`);
    await a.stop();
    assert.equal(existsSync(a.socketPath), false, 'stop removes the UAPI socket');
    assert.equal(processGone(a.process.pid), true);
  });

  test('coturn answers a STUN binding request with the router WAN address', async (t) => {
    if (!requirePrereqs(t, [...LAB_PREREQS, 'turnserver'])) return;
    const net = await natLabFor(t, { a: 'cone', b: 'none' });
    const stun = await CoturnStun.start(net.relay.ns, { addr: net.relay.addr });
    // Binding request, written out: type 0x0001, length 0, magic cookie, 12-byte transaction id.
    const txId = randomBytes(12);
    const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), txId]);
    assert.equal(request.length, 20);
    const [r] = await udpProbe(net.a.ns, { bind: '0.0.0.0:40000', targets: [stun.endpoint], payload: request });
    assert.equal(r?.ok, true);
    const msg = r!.reply!;
    assert.equal(msg.readUInt16BE(0), 0x0101, 'binding success response');
    assert.equal(msg.readUInt32BE(4), 0x2112a442);
    assert.deepEqual(msg.subarray(8, 20), txId);
    // Walk the attributes for XOR-MAPPED-ADDRESS (0x0020).
    let mapped: string | undefined;
    for (let off = 20; off + 4 <= 20 + msg.readUInt16BE(2); ) {
      const type = msg.readUInt16BE(off);
      const len = msg.readUInt16BE(off + 2);
      if (type === 0x0020) {
        assert.equal(msg[off + 5], 0x01, 'IPv4');
        const port = msg.readUInt16BE(off + 6) ^ 0x2112;
        const ip = [0, 1, 2, 3].map((i) => msg[off + 8 + i]! ^ [0x21, 0x12, 0xa4, 0x42][i]!).join('.');
        mapped = `${ip}:${port}`;
      }
      off += 4 + Math.ceil(len / 4) * 4;
    }
    assert.equal(mapped, `${net.routers.a!.wanAddr}:40000`);
  });

  test('wireguard-go throughput baseline gives a positive rate in Mbit/s', async (t) => {
    if (!requirePrereqs(t, [...LAB_PREREQS, 'tun', 'wireguard-go', 'wg', 'iperf3'])) return;
    const r = await measureWireguardGoThroughput({ seconds: 1 });
    assert.ok(r.mbps > 1, `${r.mbps} Mbit/s`);
    assert.ok(r.sentMbps >= r.mbps * 0.5);
    assert.ok(r.seconds > 0.5);
  });
});

interface ChildReport {
  runTag: string;
  netns: string[];
  pids: number[];
  socket: string;
  workDir: string;
}

/** Runs the lab-child fixture until it has printed its report; returns it and the process. */
async function labChild(mode: 'wait' | 'throw' | 'exit'): Promise<{ report: ChildReport; exited: Promise<void>; pid: number }> {
  const child = spawn(process.execPath, [LAB_CHILD, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const report = await new Promise<ChildReport>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as ChildReport);
    });
    child.on('close', () => reject(new Error(`lab child ended without a report: ${err}`)));
  });
  return { report, exited, pid: child.pid! };
}

async function assertNothingLeft(r: ChildReport): Promise<void> {
  const names = await listNetns();
  assert.deepEqual(
    names.filter((n) => r.netns.includes(n)),
    [],
    'no namespace of the run is left',
  );
  const until = Date.now() + 2000; // SIGKILL is delivered asynchronously
  while (r.pids.some((p) => !processGone(p)) && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  for (const pid of r.pids) assert.equal(processGone(pid), true, `pid ${pid} is gone`);
  assert.equal(existsSync(r.socket), false, 'no wireguard socket is left');
  assert.equal(existsSync(r.workDir), false, 'no work directory is left');
}

describe('lab: clean-up', () => {
  test('close() removes namespaces, tracked and stray processes, wg sockets; twice is fine', async (t) => {
    if (!requirePrereqs(t, [...LAB_PREREQS, 'tun', 'wireguard-go', 'wg'])) return;
    const lab = await labFor(t);
    const ns = await lab.addNamespace('x');
    const wg = await WireguardGo.start(ns, { address: '10.79.0.1/24' });
    const tracked = ns.spawn(['sleep', '600']);
    const stray = Number((await ns.run(['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!'])).trim());
    const report: ChildReport = {
      runTag: lab.runTag,
      netns: lab.netns.map((n) => n.name),
      pids: [wg.process.pid, tracked.pid, stray],
      socket: wg.socketPath,
      workDir: lab.workDir,
    };
    assert.ok((await listNetns()).includes(ns.name));
    assert.equal(processGone(stray), false);
    await lab.close();
    await lab.close();
    lab.closeSync();
    assert.equal(lab.closed, true);
    await assertNothingLeft(report);
    await assert.rejects(lab.addNamespace('late'), { code: 'E_LAB' });
  });

  test('SIGTERM, an uncaught exception and process.exit each clean up; sweep removes a SIGKILLed run', async (t) => {
    if (!requirePrereqs(t, [...LAB_PREREQS, 'tun', 'wireguard-go', 'wg'])) return;
    const term = await labChild('wait');
    process.kill(term.pid, 'SIGTERM');
    await term.exited;
    await assertNothingLeft(term.report);

    const crash = await labChild('throw');
    await crash.exited;
    await assertNothingLeft(crash.report);

    const exit = await labChild('exit');
    await exit.exited;
    await assertNothingLeft(exit.report);

    // A run of ours that is still alive must survive the sweep.
    const mine = await labFor(t);
    const live = await mine.addNamespace('live');

    const killed = await labChild('wait');
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    // SIGKILL leaves everything behind; the next sweep (ours, or that of a lab starting in
    // another test process at the same moment) removes it.
    const swept = await sweepLeftovers();
    for (const n of swept.namespaces) {
      const owner = parseLabName(n);
      assert.ok(owner && processGone(owner.pid), `sweep removed ${n} of a dead run only`);
    }
    await assertNothingLeft(killed.report);
    assert.ok((await listNetns()).includes(live.name), 'a live run is never swept');
  });
});

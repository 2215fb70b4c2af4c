/**
 * The operator's tools against a real mesh: hosts behind real NATs in network namespaces, each
 * running the real `meshd` CLI and daemon; the owner on the public host with the embedded DWN
 * and a relay.
 *
 *   public (owner, DWN, relay)   a ─ cone NAT      c ─ symmetric NAT
 *                                b ─ cone NAT      d ─ symmetric NAT
 *
 * - `meshd ping` a→b (cone pair): the first reply comes `via relay`, later ones `via ip:port`,
 *   and `--until-direct` exits 0 once one does; c→d (symmetric pair) stays on the relay and
 *   `--until-direct` exits 1 after its pings, saying why; unknown/removed peers are named;
 * - a metrics scrape during a transfer a→b shows the bytes rising and parses strictly, on the
 *   control socket and on --metrics-listen;
 * - `meshd doctor` on a healthy node prints only ok/info and exits 0; on b with the DWN blocked,
 *   UDP blocked at its router and its TUN deleted underneath it, it names each and exits 1.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { socketPath } from '../../src/daemon/api.js';
import { natLab, natRouter, type NatLab } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { parsePrometheusText, sampleValue } from '../helpers/prom-text.js';
import { AGENT_PREREQS, DWN_PORT, daemonStatus, meshd, meshdJson, meshdOk, peerOf, pingUntil, prepareJoiner, tcpTransfer, upJoiner, waitUntil, type MeshNode } from './agent-helpers.js';

const RELAY_PORT = 3340;
const METRICS_PORT = 9101;

/** GET /metrics on a daemon's control socket (from this process: the socket is a file). */
function scrape(home: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socketPath(home), path: '/metrics', agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('meshd ping, metrics and doctor on a real mesh', { timeout: 400_000 }, () => {
  let lab: NatLab | undefined;
  const nodes: Record<'owner' | 'a' | 'b' | 'c' | 'd', MeshNode> = {} as never;

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await natLab({ a: 'cone', b: 'cone' });
    const routerC = await natRouter(lab.internet, 'symmetric', { role: 'router-c' });
    const routerD = await natRouter(lab.internet, 'symmetric', { role: 'router-d' });
    const hosts = { a: lab.a, b: lab.b, c: await routerC.addHost('c'), d: await routerD.addHost('d') };
    const ownerHome = lab.lab.file('home-owner');
    const up = await meshdJson<{ identity: { did: string; meshIP: string; meshIP6: string; wireguardKey: string }; network: { id: string } }>(
      { ns: lab.relay.ns, home: ownerHome, name: 'owner' },
      ['up', '--create', 'ops', '--dwn-listen', '0.0.0.0', '--relay', `${lab.relay.addr}:${RELAY_PORT}`, '--hostname', 'owner'],
    );
    nodes.owner = { name: 'owner', host: lab.relay, ns: lab.relay.ns, home: ownerHome, ...up.identity };
    const mesh = { internet: lab.internet, owner: nodes.owner, networkId: up.network.id, endpoint: `http://${lab.relay.addr}:${DWN_PORT}` };
    const prepared = [];
    for (const name of ['a', 'b', 'c', 'd'] as const) prepared.push({ name, p: await prepareJoiner(mesh, name, hosts[name]) });
    // a and b must not find their direct path before the first test pings it: b's router drops
    // UDP until that test lifts it (status probes and set-up traffic would otherwise go direct)
    await lab.routers.b!.blockUdp();
    const joined = await Promise.all(prepared.map(({ name, p }) => upJoiner(mesh, name, p)));
    for (const n of joined) nodes[n.name as 'a'] = n;
    // b also serves metrics over TCP, as `up --metrics-listen`, and is named "b" (the lab's
    // hosts share one host name): restarted with both
    await meshdOk(nodes.b, ['down']);
    await meshdOk(nodes.b, ['up', '--metrics-listen', `127.0.0.1:${METRICS_PORT}`, '--hostname', 'b']);
    // every node knows every other (by the map) and its relay is up before the tests start
    for (const n of joined) {
      const ok = await waitUntil(async () => {
        const s = await daemonStatus(n);
        const named = n === nodes.b || peerOf(s, nodes.b)?.hostname === 'b';
        return named && s.peers.length === 4 && s.peers.every((p) => p.online) && (s.dataplane?.relays ?? []).some((r) => r.state === 'connected');
      }, 30_000, 250);
      assert.ok(ok, `${n.name}: peers or relay not ready`);
    }
  });
  after(() => lab?.close());

  test('ping a cone-NAT pair: via relay first, then direct; --until-direct exits 0', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { a, b } = nodes;
    // UDP from b's router is dropped (before()): the first replies can only come over the relay;
    // 3 s into the pings it passes again, and the pings themselves find the direct path
    const unblock = setTimeout(() => void lab!.routers.b!.unblockUdp(), 3000);
    const r = await meshd(a, ['ping', 'b', '--until-direct', '-c', '40', '--interval', '0.5'], 120_000).finally(() => clearTimeout(unblock));
    await lab!.routers.b!.unblockUdp(); // (again: a no-op when the timer did it)
    const lines = r.stdout.trim().split('\n');
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}\n${r.stdout}`);
    assert.match(lines[0]!, new RegExp(`^pong from b \\(${b.meshIP.replace(/\./g, '\\.')}\\) via relay meshd-\\S+ \\(https://${lab!.relay.addr.replace(/\./g, '\\.')}:${RELAY_PORT}/derp\\) in \\d+\\.\\d ms$`), r.stdout);
    assert.match(lines.at(-1)!, /^pong from b \(\S+\) via 203\.0\.113\.\d+:\d+ in \d+\.\d ms$/, r.stdout);
    assert.ok(lines.length >= 2);
    // the daemon agrees: the path to b is direct, at the address ping printed
    const via = /via (\S+) in/.exec(lines.at(-1)!)![1];
    const s = await daemonStatus(a);
    assert.equal(peerOf(s, b)?.path, 'direct');
    assert.equal(peerOf(s, b)?.endpoint, via);
    // JSON lines, by mesh IP
    const j = await meshdOk(a, ['ping', b.meshIP, '-c', '1', '--json']);
    const reply = JSON.parse(j.trim()) as { seq: number; reply: { via: string; address: string } };
    assert.equal(reply.seq, 1);
    assert.equal(reply.reply.via, 'direct');
  });

  test('ping a symmetric-NAT pair: every reply via relay; --until-direct exits 1 after its pings', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { c, d } = nodes;
    const r = await meshd(c, ['ping', d.did, '--until-direct', '-c', '6', '--interval', '0.5'], 120_000);
    assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 6, r.stdout);
    assert.ok(lines.every((l) => / via relay meshd-\S+ \(https:\/\/\S+\) in /.test(l)), r.stdout);
    assert.match(r.stderr, new RegExp(`no direct path to \\S+ \\(${d.meshIP.replace(/\./g, '\\.')}\\) after 6 pings: its replies came over the relay`));
  });

  test('ping says why not: an unknown peer, this device, a removed peer', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { a } = nodes;
    const unknown = await meshd(a, ['ping', 'nobody', '-c', '1']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no peer "nobody" in this network/);
    const self = await meshd(a, ['ping', a.meshIP, '-c', '1']);
    assert.equal(self.code, 2);
    assert.match(self.stderr, /is this device/);
    // the owner removes d; a says so by d's mesh IP once its map has it
    await meshdOk(nodes.owner, ['peer', 'remove', nodes.d.did]);
    let last = '';
    const gone = await waitUntil(async () => {
      const r = await meshd(a, ['ping', nodes.d.meshIP, '-c', '1']);
      last = r.stderr;
      return /was removed from the network by its owner|left the network at/.test(r.stderr) ? r : null;
    }, 20_000, 500);
    assert.ok(gone, `ping never said that d was removed; last: ${last}`);
    assert.equal(gone.code, 1);
  });

  test('ip, whois and logs on a running node', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { a, b } = nodes;
    assert.equal((await meshdOk(a, ['ip'])).trim(), `${a.meshIP}\n${a.meshIP6}`);
    assert.equal((await meshdOk(a, ['ip', 'b', '-4'])).trim(), b.meshIP);
    assert.equal((await meshdOk(a, ['ip', b.did, '-6'])).trim(), b.meshIP6);
    const w = await meshdJson<{ name: string; did: string; owner: string; member: string | null; self: boolean }>(a, ['whois', b.meshIP]);
    assert.deepEqual([w.name, w.did, w.owner, w.member, w.self], ['b', b.did, nodes.owner.did, null, false]);
    assert.match(await meshdOk(a, ['whois', a.meshIP6]), /\(this device\)/);
    const none = await meshd(a, ['whois', '10.200.255.254']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no device of network "ops" has the address 10\.200\.255\.254/);
    assert.equal((await meshd(a, ['whois', 'not-an-ip'])).code, 2);
    const logs = await meshdOk(a, ['logs', '--since', '10m', '--level', 'info']);
    assert.match(logs, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO {2}map\.applied /m);
  });

  test('ping names an ACL that lets nothing through to the peer', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { a, b, owner } = nodes;
    const policy = (version: number, rules: unknown[]) => {
      const file = lab!.lab.file(`acl-${version}.json`);
      writeFileSync(file, JSON.stringify({ version, defaultAction: 'drop', groups: {}, rules }));
      return file;
    };
    await meshdOk(owner, ['acl', 'set', policy(2, [{ action: 'accept', src: ['*'], dst: [owner.did] }])]);
    let last = '';
    const denied = await waitUntil(async () => {
      const r = await meshd(a, ['ping', 'b', '-c', '1']);
      last = r.stderr;
      return r.code === 1 && /the ACL policy \(version 2\) lets nothing from this device through to b/.test(r.stderr);
    }, 20_000, 300);
    assert.ok(denied, `ping did not name the ACL; last: ${last}`);
    await meshdOk(owner, ['acl', 'set', policy(3, [{ action: 'accept', src: ['*'], dst: ['*'] }])]);
    assert.ok(await waitUntil(async () => (await meshd(a, ['ping', 'b', '-c', '1'])).code === 0, 20_000, 300), 'ping after the ACL opened again');
    assert.ok((await pingUntil(a.ns, b.meshIP, 20_000)) !== null, 'no ICMP a→b after the ACL opened again');
  });

  test('a metrics scrape during a transfer shows the bytes rising and parses strictly', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { a, b } = nodes;
    const peer = { peer: b.meshIP };
    const before = sampleValue(parsePrometheusText(await scrape(a.home)), 'meshd_peer_tx_bytes_total', peer) ?? 0;
    const seen: number[] = [];
    let done = false;
    const bytes = 40 << 20;
    const transfer = tcpTransfer(a, b, bytes).finally(() => (done = true));
    while (!done) {
      const f = parsePrometheusText(await scrape(a.home));
      seen.push(sampleValue(f, 'meshd_peer_tx_bytes_total', peer) ?? NaN);
      await new Promise((r) => setTimeout(r, 50));
    }
    const res = await transfer;
    assert.equal(res.received.sha256, res.sent.sha256);
    const f = parsePrometheusText(await scrape(a.home));
    const afterTx = sampleValue(f, 'meshd_peer_tx_bytes_total', peer)!;
    assert.ok(afterTx - before >= bytes, `tx rose by ${afterTx - before}, sent ${bytes}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `tx bytes went down: ${seen.join(', ')}`);
    const mid = new Set(seen.filter((v) => v > before && v < afterTx));
    assert.ok(mid.size >= 2, `no rising values during the transfer: ${[before, ...seen, afterTx].join(', ')}`);
    assert.equal(f.get('meshd_peer_tx_bytes_total')?.type, 'counter');
    assert.equal(sampleValue(f, 'meshd_peer_path', { ...peer, path: 'direct' }), 1);
    assert.ok((sampleValue(f, 'meshd_peer_handshakes_total', peer) ?? 0) >= 1);
    assert.equal(sampleValue(f, 'meshd_dwn_connected'), 1);
    assert.ok(f.get('meshd_relay_connected')!.samples.some((s) => s.value === 1));
    // b's --metrics-listen, scraped from inside its namespace: its rx counts what a sent
    const script = `fetch(process.argv[1]).then(async (r) => { process.stdout.write(await r.text()); process.exit(r.ok ? 0 : 1); }, (e) => { console.error(e.message); process.exit(1); })`;
    const r = await b.ns.exec([process.execPath, '-e', script, `http://127.0.0.1:${METRICS_PORT}/metrics`], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    const fb = parsePrometheusText(r.stdout);
    assert.ok((sampleValue(fb, 'meshd_peer_rx_bytes_total', { peer: a.meshIP }) ?? 0) >= bytes);
  });

  test('doctor on a healthy node: only ok and info, exit 0', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const r = await meshd(nodes.a, ['doctor'], 60_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n\n')[0]!.split('\n').filter((l) => !l.startsWith(' '));
    assert.ok(lines.length >= 8, r.stdout);
    for (const l of lines) assert.match(l, /^(ok|info) /, `not ok/info: ${l}\n${r.stdout}`);
    for (const check of ['identity', 'daemon', 'network', 'dwn', 'time', 'subscription', 'tun', 'routes', 'udp', 'relay', 'vpn-clash']) {
      assert.ok(lines.some((l) => l.split(/\s+/)[1] === check), `no ${check} check:\n${r.stdout}`);
    }
    const j = JSON.parse(await meshdOk(nodes.a, ['doctor', '--json'], 60_000)) as { ok: boolean; checks: { status: string }[] };
    assert.equal(j.ok, true);
  });

  test('doctor with the DWN blocked, UDP blocked and the TUN deleted: names each, exit 1', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const { b } = nodes;
    await b.ns.iptables('-I', 'OUTPUT', '-p', 'tcp', '-d', lab!.relay.addr, '--dport', String(DWN_PORT), '-j', 'REJECT', '--reject-with', 'tcp-reset');
    await lab!.routers.b!.blockUdp();
    await b.ns.ip('link', 'del', 'meshd0');
    const r = await meshd(b, ['doctor'], 60_000);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^fail\s+dwn\s+DWN http:\/\/\S+ unreachable: /m);
    assert.match(r.stdout, /^(fail|warn)\s+udp\s+UDP is blocked/m);
    assert.match(r.stdout, /^fail\s+tun\s+tunnel device meshd0 is gone/m);
    assert.match(r.stdout, /→ restart meshd/);
    assert.match(r.stderr, /checks? failed: .*dwn.*tun|checks? failed: .*tun.*dwn/);
  });
});

/**
 * The quick start without traps (issue "the first hour"), each trap as a user meets it, across
 * namespaces standing in for machines (real CLI, embedded DWN, daemons, TUN devices):
 *
 * - `up --create` without --dwn-listen: other machines reach the embedded DWN, the choice is
 *   remembered on the next `up`, and the URL they must use is printed;
 * - `up --relay` without an address announces a reachable one, never 0.0.0.0;
 * - a second home on the same host does not use the first home's embedded DWN;
 * - a device that is down shows offline at once, not after minutes;
 * - `acl show` (like `status` and `peer list`) falls back to the cache when the DWN is down;
 * - `up` without root or CAP_NET_ADMIN says so in one line and writes nothing;
 * - read commands into a closed pipe exit quietly (no EPIPE stack);
 * - `--hostname`, `netcheck` with no arguments, the daemon-view table, ACL version auto-bump,
 *   `auth logout` of a running profile, `network leave` (stops the daemon; the owner is asked).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { Internet, Lab, type Host } from '../../src/lab/index.js';
import { addHost, AGENT_PREREQS, DWN_PORT, dwnHealthy, MESHD_BIN, meshd, meshdJson, meshdOk, waitUntil, type DaemonStatus, type MeshdTarget } from './agent-helpers.js';

const RELAY_PORT = 3340;

describe('meshd quick start without traps', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let internet: Internet;
  let ownerHost!: Host;
  let owner!: MeshdTarget;
  let upStderr = '';
  let joiner!: MeshdTarget & { host: Host };

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    internet = await Internet.create(lab);
    ownerHost = await addHost(internet, 'o');
    owner = { ns: ownerHost.ns, home: lab.file('home-o'), name: 'o' };
    // the README's quick start: no --dwn-listen, a relay with no address
    const r = await meshd(owner, ['up', '--create', 'onb', '--relay', '--relay-insecure-http']);
    assert.equal(r.code, 0, r.stderr);
    upStderr = r.stderr;
    const inv = await meshdJson<{ invite: string }>(owner, ['invite']);
    const jh = await addHost(internet, 'j');
    joiner = { ns: jh.ns, home: lab.file('home-j'), name: 'j', host: jh };
    await meshdOk(joiner, ['up', inv.invite, '--hostname', 'laptop-7', '--wait', '60']);
  });
  after(() => lab?.close());

  const status = (t: MeshdTarget) => meshdJson<DaemonStatus>(t, ['status']);

  test('up --create: other machines reach the embedded DWN, the URL is printed, and it is remembered', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const url = `http://${ownerHost.addr}:${DWN_PORT}`;
    assert.ok(upStderr.includes(`other machines reach it at ${url}`), upStderr);
    assert.ok(await dwnHealthy(joiner.ns, url), 'the joiner reaches the owner DWN');
    await meshdOk(owner, ['down']);
    await meshdOk(owner, ['up', '--relay', '--relay-insecure-http']);
    assert.ok(await dwnHealthy(joiner.ns, url), 'after down and up, still reachable (remembered)');
  });

  test('up --relay without an address announces a reachable one, and netcheck alone checks it', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const url = `http://${ownerHost.addr}:${RELAY_PORT}/derp`;
    assert.equal((await status(owner)).relayServer?.url, url);
    // the joiner's map names it: `netcheck` with no argument measures the network's relays
    const report = await waitUntil(async () => {
      const r = await meshd(joiner, ['netcheck', '--json']);
      if (r.code !== 0) return undefined;
      const j = JSON.parse(r.stdout) as { relays: { url: string }[]; preferredRelay: string | null };
      return j.relays.some((x) => x.url === url) && j.preferredRelay !== null ? j : undefined;
    }, 20_000, 500);
    assert.ok(report, 'netcheck with no arguments measured the relay at the announced address');
  });

  test('--hostname is what peers see; the daemon view is a table with short names', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const st = await status(owner);
    assert.deepEqual(
      st.peers.map((p) => p.hostname),
      ['laptop-7'],
    );
    const text = await meshdOk(owner, ['status']);
    const lines = text.trimEnd().split('\n');
    const header = lines.findIndex((l) => /^HOST\s+MESH IP\s+STATE\s+VIA/.test(l));
    assert.ok(header >= 0, text);
    const row = lines[header + 1]!;
    assert.match(row, /^laptop-7\s+10\.200\.\d+\.\d+\s+direct\s+198\.51\.100\.\d+:\d+ [\d.]+ms\s/);
    assert.ok(lines.slice(header).every((l) => l.length <= 100), `a peer row wider than 100 columns:\n${text}`);
    assert.ok(!text.includes(st.peers[0]!.did), 'full DIDs only in --json');
  });

  test('a second home on this host: up --create gets its own DWN port, not the first home’s DWN', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const second = { ns: ownerHost.ns, home: lab!.file('home-o2'), name: 'o2' };
    // two networks on one host need prefixes that do not overlap (docs/NETWORKS.md)
    const r = await meshd(second, ['up', '--create', 'other', '--tun', 'meshd1', '--cidr', '10.201.0.0/16']);
    try {
      assert.equal(r.code, 0, r.stderr);
      const port = /via http:\/\/127\.0\.0\.1:(\d+)/.exec(r.stdout)?.[1];
      assert.ok(port !== undefined, r.stdout);
      assert.notEqual(port, String(DWN_PORT), 'the second home does not use the first home’s DWN');
      assert.match(r.stderr, /port 8787 serves another meshd home's DWN/);
      // both networks stand: the first owner still reads its own
      assert.equal((await meshdJson<{ peers: unknown[] }>(owner, ['peer', 'list'])).peers.length, 1);
    } finally {
      await meshd(second, ['down']);
    }
  });

  test('acl set bumps the version by itself; acl show falls back to the cache when the DWN is down', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const file = lab!.file('acl.json');
    writeFileSync(file, JSON.stringify({ defaultAction: 'accept', rules: [] }));
    const v1 = await meshdJson<{ version: number }>(owner, ['acl', 'set', file]);
    const v2 = await meshdJson<{ version: number }>(owner, ['acl', 'set', file]);
    assert.equal(v2.version, v1.version + 1);
    // the joiner's daemon applies it, then its DWN becomes unreachable
    await waitUntil(async () => (await status(joiner)).filter.policyVersion === v2.version, 15_000, 300);
    const rule = ['OUTPUT', '-p', 'tcp', '--dport', String(DWN_PORT), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
    await joiner.ns.exec(['iptables', '-I', ...rule]);
    try {
      const r = await meshd(joiner, ['acl', 'show']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^Warning: .*cached/m);
      assert.match(r.stdout, new RegExp(`ACL policy version ${v2.version} as last applied`));
      const peers = await meshd(joiner, ['peer', 'list']);
      assert.equal(peers.code, 0, peers.stderr);
    } finally {
      await joiner.ns.exec(['iptables', '-D', ...rule]);
    }
  });

  test('read commands into a closed pipe exit quietly', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    for (const cmd of ['acl show', 'auth list', 'status', 'peer list']) {
      const r = await owner.ns.exec(['bash', '-c', `set -o pipefail; ${process.execPath} ${MESHD_BIN} --home ${owner.home} ${cmd} | true`], { env: { MESHD_DEBUG: '' } });
      assert.equal(r.stderr, '', `${cmd}: ${r.stderr}`);
      assert.equal(r.code, 0, cmd);
    }
  });

  test('up without root or CAP_NET_ADMIN: one line saying so, and nothing written', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const home = lab!.file('home-nobody');
    const inv = await meshdJson<{ invite: string }>(owner, ['invite']);
    const r = await joiner.ns.exec(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MESHD_BIN, '--home', home, 'up', inv.invite], {
      env: { MESHD_DEBUG: '' },
    });
    assert.notEqual(r.code, 0);
    const errors = r.stderr.trim().split('\n');
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, /root or CAP_NET_ADMIN/);
    assert.ok(!existsSync(home) || readdirSync(home).length === 0, 'nothing written');
  });

  test('auth logout of the running profile is refused', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const list = await meshdJson<{ name: string }[]>(joiner, ['auth', 'list']);
    const name = list[0]!.name;
    const r = await meshd(joiner, ['auth', 'logout', name, '--yes']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /running|meshd down/);
    assert.equal((await status(joiner)).state, 'running');
  });

  test('a device that goes down shows offline at once (liveness, not a record flag)', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const online = async () => (await status(owner)).peers.find((p) => p.hostname === 'laptop-7')?.online;
    assert.equal(await waitUntil(async () => (await online()) === true, 10_000, 300), true, 'online while up');
    await meshdOk(joiner, ['down']);
    const started = Date.now();
    const off = await waitUntil(async () => (await online()) === false, 5000, 200);
    assert.equal(off, true, 'still online 5 s after `meshd down`');
    t.diagnostic(`offline after ${Date.now() - started} ms`);
    const list = await meshdJson<{ peers: { hostname: string | null; online: boolean }[] }>(owner, ['peer', 'list']);
    assert.equal(list.peers.find((p) => p.hostname === 'laptop-7')?.online, false, 'peer list agrees');
    await meshdOk(joiner, ['up']);
    assert.equal(await waitUntil(async () => (await online()) === true, 10_000, 300), true, 'online again after up');
  });

  test('network leave stops the daemon first; the owner is asked', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const o = await meshd(owner, ['network', 'leave']);
    assert.equal(o.code, 2);
    assert.match(o.stderr, /--yes/);
    await meshdOk(joiner, ['network', 'leave']);
    const st = await meshd(joiner, ['status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as { state?: string; network: unknown };
    assert.notEqual(s.state, 'running', 'the daemon stopped');
    assert.equal(s.network, null);
  });
});

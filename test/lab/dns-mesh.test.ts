/**
 * Mesh DNS for real: hosts on one lab internet, each namespace with a resolv.conf of its own
 * (`ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf) pointing at a
 * little upstream DNS server on the lab internet that knows `files.example.test`. The daemons
 * run with `--accept-dns` and edit that file (never the host's).
 *
 *   - `ping laptop.lab.internal` from another node works, through the daemon's server
 *     (A, PTR, the short name through the search list); the server answers on the node's mesh
 *     IPv6 address too;
 *   - two nodes that chose the same name: every node calls them `desk` and `desk-2` alike;
 *   - a rename with `meshd up --hostname NEW` reaches every other node within 2 s;
 *   - `getent hosts files.example.test` works with meshd up, after `kill -9` of the daemon, after
 *     the restart (which recovers and re-applies), and after `meshd down` (which puts the
 *     original resolv.conf back, byte for byte — also when the daemon was killed and `down`
 *     finds none running).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Internet, Lab, type Host, type LabProcess, type Netns } from '../../src/lab/index.js';
import { missingPrereqs, requirePrereqs } from '../helpers/prereqs.js';
import { AGENT_PREREQS, addHost, daemonStatus, DWN_PORT, meshd, meshdJson, meshdOk, pingUntil, prepareJoiner, waitUntil, type MeshNode } from './agent-helpers.js';
import { processGone } from './helpers.js';

const DNS_UPSTREAM = fileURLToPath(new URL('./fixtures/dns-upstream.js', import.meta.url));
const SUFFIX = 'lab.internal';
const OUTSIDE = 'files.example.test';
const OUTSIDE_IP = '192.0.2.55';

interface UpJson {
  identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string };
  network: { id: string; endpoint: string };
}

/** `getent KIND NAME` in ns: the first address (or name) it prints, null when it fails. */
async function getent(ns: Netns, kind: 'ahostsv4' | 'hosts', key: string, timeoutMs = 30_000): Promise<{ value: string | null; ms: number; line: string }> {
  const t0 = Date.now();
  const r = await ns.exec(['getent', kind, key], { timeoutMs });
  const line = r.stdout.trim().split('\n')[0] ?? '';
  const f = line.split(/\s+/);
  return { value: r.code === 0 ? (kind === 'hosts' && key.match(/^[\d.]+$/) ? (f[1] ?? null) : (f[0] ?? null)) : null, ms: Date.now() - t0, line };
}

describe('mesh DNS: names, renames, and the host resolver up, down and killed', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let upstream: LabProcess | undefined;
  const etcDirs: string[] = [];
  const originals = new Map<string, string>();
  let a!: MeshNode;
  let b!: MeshNode;
  let c!: MeshNode;

  /** /etc/netns/NS/resolv.conf: the namespace's own resolv.conf. */
  function giveResolvConf(host: Host, text: string): string {
    const d = join('/etc/netns', host.ns.name);
    mkdirSync(d, { recursive: true });
    etcDirs.push(d);
    const f = join(d, 'resolv.conf');
    writeFileSync(f, text);
    originals.set(host.ns.name, text);
    return f;
  }
  const resolvConf = (n: MeshNode) => readFileSync(join('/etc/netns', n.ns.name, 'resolv.conf'), 'utf8');

  before(async () => {
    if (missingPrereqs(AGENT_PREREQS).length > 0) return;
    lab = await Lab.create();
    const internet = await Internet.create(lab);
    const dnsHost = await addHost(internet, 'dns');
    upstream = dnsHost.ns.node(DNS_UPSTREAM, ['--bind', `${dnsHost.addr}:53`, '--name', `${OUTSIDE}=${OUTSIDE_IP}`], { label: 'dns-upstream' });
    await upstream.waitFor('"event":"ready"', 10_000);
    const conf = `# the lab's resolver\nnameserver ${dnsHost.addr}\noptions edns0\n`;
    const hostA = await addHost(internet, 'a');
    const hostB = await addHost(internet, 'b');
    const hostC = await addHost(internet, 'c');
    giveResolvConf(hostA, conf);
    giveResolvConf(hostB, conf);
    giveResolvConf(hostC, conf);

    const homeA = join(lab.workDir, 'home-a');
    const upA = await meshdJson<UpJson>({ ns: hostA.ns, home: homeA, name: 'a' }, ['up', '--create', 'lab', '--dwn-listen', '0.0.0.0', '--hostname', 'laptop', '--accept-dns']);
    a = { name: 'a', host: hostA, ns: hostA.ns, home: homeA, ...upA.identity };
    const endpoint = `http://${hostA.addr}:${DWN_PORT}`;
    const pb = await prepareJoiner({ internet, owner: a }, 'b', hostB);
    const upB = await meshdJson<UpJson>({ ns: hostB.ns, home: pb.home, name: 'b' }, ['up', '--endpoint', endpoint, '--anchor', a.did, '--network', upA.network.id, '--hostname', 'desk', '--accept-dns']);
    b = { name: 'b', host: hostB, ns: hostB.ns, home: pb.home, ...upB.identity };
    // c takes b's name (and leaves its host's DNS alone: no --accept-dns, no resolved here)
    const pc = await prepareJoiner({ internet, owner: a }, 'c', hostC);
    const upC = await meshdJson<UpJson>({ ns: hostC.ns, home: pc.home, name: 'c' }, ['up', '--endpoint', endpoint, '--anchor', a.did, '--network', upA.network.id, '--hostname', 'Desk.example.org']);
    c = { name: 'c', host: hostC, ns: hostC.ns, home: pc.home, ...upC.identity };
  });
  after(async () => {
    await lab?.close();
    for (const d of etcDirs) rmSync(d, { recursive: true, force: true });
    try {
      rmdirSync('/etc/netns'); // only when no one else has a namespace file there
    } catch {
      /* not empty, or gone */
    }
  });

  test('ping <name>.<suffix> from another node; A and PTR come from the daemon; short names through the search list', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.match(resolvConf(b), new RegExp(`^# Written by meshd.*\nnameserver ${b.meshIP.replace(/\./g, '\\.')}\n`), resolvConf(b));
    const r = await waitUntil(async () => ((await getent(b.ns, 'ahostsv4', `laptop.${SUFFIX}`)).value === a.meshIP ? true : undefined), 10_000, 200);
    assert.ok(r, `b did not resolve laptop.${SUFFIX} to ${a.meshIP}: ${(await getent(b.ns, 'ahostsv4', `laptop.${SUFFIX}`)).line}`);
    assert.notEqual(await pingUntil(b.ns, `laptop.${SUFFIX}`, 15_000), null, `ping laptop.${SUFFIX} from b got no answer`);
    const bName = `${b.did < c.did ? 'desk' : 'desk-2'}.${SUFFIX}`; // c took the same name (next test)
    assert.notEqual(await pingUntil(a.ns, bName, 15_000), null, `ping ${bName} from a got no answer`);
    assert.equal((await getent(b.ns, 'ahostsv4', 'laptop')).value, a.meshIP, 'the short name through the search list');
    assert.equal((await getent(b.ns, 'hosts', a.meshIP)).value, `laptop.${SUFFIX}`, 'PTR of a mesh IP');
    const s = await daemonStatus(b);
    assert.equal(s.dns?.name, bName);
    assert.equal(s.dns?.mode, 'resolv.conf');
    assert.equal(s.peers.find((p) => p.did === a.did)?.dnsName, `laptop.${SUFFIX}`);
    assert.ok((s.dns?.counters.local ?? 0) > 0, 'no query was answered by b’s daemon');
    const human = await meshdOk(b, ['status']);
    assert.ok(human.includes(`DNS: ${bName} (server ${b.meshIP}:53, host via resolv.conf)`), human);
    const table = await meshdOk(b, ['peer', 'list']);
    assert.match(table, /^laptop\s/m, table); // the HOST column shows the DNS label
  });

  test('the daemon answers on its mesh IPv6 address too: another node asks over the tunnel', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    assert.equal((await daemonStatus(b)).dns?.address6, b.meshIP6);
    // c-ares (node:dns) in a's namespace, asking only [b's mesh IPv6]:53
    const script = `const { Resolver } = require('node:dns').promises; const r = new Resolver({ timeout: 1000, tries: 1 }); r.setServers([process.argv[1]]); r.resolve4(process.argv[2]).then((x) => console.log(x.join(',')), (e) => { console.log(e.code); process.exit(1); });`;
    const ask = () => a.ns.exec([process.execPath, '-e', script, `[${b.meshIP6}]:53`, `laptop.${SUFFIX}`], { timeoutMs: 10_000 });
    const got = await waitUntil(async () => ((await ask()).stdout.trim() === a.meshIP ? true : undefined), 10_000, 200);
    assert.ok(got, `a asked b's DNS at [${b.meshIP6}]:53 for laptop.${SUFFIX}: ${(await ask()).stdout.trim()}`);
  });

  test('a clash gets a stable -2: the node with the lower DID keeps the name, on every node', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const [first, second] = b.did < c.did ? [b, c] : [c, b];
    const seen = await waitUntil(async () => {
      const [sa, sb, sc] = await Promise.all([daemonStatus(a), daemonStatus(b), daemonStatus(c)]);
      const nameOf = (s: typeof sa, n: MeshNode) => (s.identity.did === n.did ? s.dns?.name : s.peers.find((p) => p.did === n.did)?.dnsName);
      const views = [sa, sb, sc].map((s) => [nameOf(s, first), nameOf(s, second)].join(' '));
      return views.every((v) => v === `desk.${SUFFIX} desk-2.${SUFFIX}`) ? views : undefined;
    }, 10_000, 200);
    assert.ok(seen, 'the nodes do not agree on desk / desk-2');
    assert.equal((await getent(a.ns, 'ahostsv4', `desk.${SUFFIX}`)).value, first.meshIP);
    assert.equal((await getent(a.ns, 'ahostsv4', `desk-2.${SUFFIX}`)).value, second.meshIP);
    assert.equal(readFileSync(join('/etc/netns', c.ns.name, 'resolv.conf'), 'utf8'), originals.get(c.ns.name), 'c’s resolv.conf was edited without --accept-dns');
  });

  test('non-mesh names resolve through the daemon to the host’s own resolver', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const before = (await daemonStatus(b)).dns!.counters.forwarded;
    const r = await getent(b.ns, 'ahostsv4', OUTSIDE);
    assert.equal(r.value, OUTSIDE_IP, r.line);
    assert.ok((await daemonStatus(b)).dns!.counters.forwarded > before, 'the query did not go through b’s daemon');
  });

  test('a rename with `meshd up --hostname` reaches every other node within 2 s', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const started = Date.now();
    await meshdOk(a, ['up', '--hostname', 'studio']);
    const t0 = Date.now(); // the command returns once the new name is written to the DWN
    const renamed = await waitUntil(async () => ((await getent(b.ns, 'ahostsv4', `studio.${SUFFIX}`, 5000)).value === a.meshIP ? Date.now() : undefined), 2000, 50);
    t.diagnostic(`b resolves studio.${SUFFIX} ${renamed ? renamed - t0 : 'never'} ms after \`up --hostname\` returned (${t0 - started} ms for the command)`);
    assert.ok(renamed !== undefined, `b did not resolve studio.${SUFFIX} within 2 s of the rename`);
    const atC = await waitUntil(async () => ((await daemonStatus(c)).peers.find((p) => p.did === a.did)?.dnsName === `studio.${SUFFIX}` ? Date.now() : undefined), Math.max(0, t0 + 2000 - Date.now()), 50);
    assert.ok(atC !== undefined, `c's name table did not have studio.${SUFFIX} within 2 s of the rename`);
    assert.equal((await getent(b.ns, 'ahostsv4', `laptop.${SUFFIX}`)).value, null, 'the old name still resolves');
    assert.equal((await daemonStatus(a)).dns?.name, `studio.${SUFFIX}`);
  });

  test('the owner sets another suffix with `meshd network dns`: every node answers under it, and back', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const shown = await meshdOk(a, ['network', 'dns', '--suffix', 'corp.test']);
    assert.match(shown, /^Set DNS: suffix corp\.test,/, shown);
    const moved = await waitUntil(async () => ((await getent(b.ns, 'ahostsv4', 'studio.corp.test', 5000)).value === a.meshIP ? true : undefined), 5000, 100);
    assert.ok(moved, 'b does not resolve studio.corp.test after the owner set the suffix');
    assert.equal((await daemonStatus(c)).peers.find((p) => p.did === a.did)?.dnsName, 'studio.corp.test');
    // a member cannot change it
    const denied = await meshd(b, ['network', 'dns', '--suffix', 'evil.test']);
    assert.notEqual(denied.code, 0, 'a node that is not the owner changed the DNS settings');
    await meshdOk(a, ['network', 'dns', '--no-suffix']);
    const back = await waitUntil(async () => ((await getent(b.ns, 'ahostsv4', `studio.${SUFFIX}`, 5000)).value === a.meshIP ? true : undefined), 5000, 100);
    assert.ok(back, `b does not resolve studio.${SUFFIX} after the suffix was removed`);
  });

  test('kill -9: the host still resolves; the restart recovers and re-applies; `meshd down` restores resolv.conf exactly', async (t) => {
    if (!requirePrereqs(t, AGENT_PREREQS)) return;
    const original = originals.get(b.ns.name)!;
    const pid = (await daemonStatus(b)).pid;
    process.kill(pid, 'SIGKILL');
    assert.ok(await waitUntil(() => processGone(pid), 5000, 50), 'the daemon did not die');
    assert.ok(resolvConf(b).startsWith('# Written by meshd'), 'precondition: the killed daemon left its resolv.conf');
    const killed = await getent(b.ns, 'ahostsv4', OUTSIDE);
    t.diagnostic(`after kill -9: ${OUTSIDE} resolved in ${killed.ms} ms (the fallback name server)`);
    assert.equal(killed.value, OUTSIDE_IP, `after kill -9: ${killed.line}`);

    await meshdOk(b, ['up']);
    assert.ok(existsSync(join(b.home, 'dns', 'resolv.conf.backup')));
    assert.equal(readFileSync(join(b.home, 'dns', 'resolv.conf.backup'), 'utf8'), original, 'the backup is the original, not our own file');
    assert.equal((await getent(b.ns, 'ahostsv4', OUTSIDE)).value, OUTSIDE_IP);
    assert.equal((await getent(b.ns, 'ahostsv4', `studio.${SUFFIX}`)).value, a.meshIP);
    const s = await daemonStatus(b);
    assert.deepEqual(s.dns?.upstreams, [original.match(/nameserver (\S+)/)![1]], 'upstreams read from the original resolv.conf');

    await meshdOk(b, ['down']);
    assert.equal(resolvConf(b), original, 'meshd down did not put the original resolv.conf back');
    assert.ok(!existsSync(join(b.home, 'dns', 'resolv.conf.backup')));

    // killed and never restarted: `meshd down` (no daemon) still puts the original back
    await meshdOk(b, ['up']);
    assert.ok(resolvConf(b).startsWith('# Written by meshd'));
    const pid2 = (await daemonStatus(b)).pid;
    process.kill(pid2, 'SIGKILL');
    assert.ok(await waitUntil(() => processGone(pid2), 5000, 50), 'the daemon did not die');
    await meshdOk(b, ['down']);
    assert.equal(resolvConf(b), original, '`meshd down` after a kill did not put the original resolv.conf back');
    assert.ok(!existsSync(join(b.home, 'dns', 'resolv.conf.backup')));
    const down = await getent(b.ns, 'ahostsv4', OUTSIDE);
    assert.equal(down.value, OUTSIDE_IP, down.line);
    assert.ok(down.ms < 3000, `resolving after down took ${down.ms} ms`);
  });
});

/**
 * The dashboard (`meshd ui`) for real: three hosts by the quick start, the owner `a` also running
 * a relay; UDP between `a` and `c` is dropped, so `a` reaches `b` directly and `c` only through
 * the relay. On `a`:
 *
 *   - the listener answers on 127.0.0.1 only: the mesh IP and the LAN address get no answer
 *     (from `a` itself and from `b`); requests without a session get 401 (API and event
 *     stream), a foreign Host or Origin 403, a spent or made-up code 401;
 *   - a real headless Chromium (run inside `a`'s namespace) opens the link: every peer shows,
 *     with the path the daemon reports (b direct, c relayed); `meshd down` on b shows b offline
 *     within 2 s; "Remove" asks for a confirmation — cancelled, nothing happens; confirmed, c is
 *     removed from the network and gone from the page; an invite made with `meshd invite`
 *     shows up and is revoked from the page;
 *   - a screenshot of the page is decoded and has many colours (not blank).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Internet, Lab, type Netns } from '../../src/lab/index.js';
import { onPath } from '../../src/util/which.js';
import { missingPrereqs, requirePrereqs, type Prereq } from '../helpers/prereqs.js';
import { colourStats, decodePng } from '../helpers/png.js';
import {
  addHost,
  AGENT_PREREQS,
  daemonStatus,
  DWN_PORT,
  meshdJson,
  meshdOk,
  peerOf,
  prepareJoiner,
  upJoiner,
  waitUntil,
  type Mesh,
  type MeshNode,
} from './agent-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const UI_PREREQS: Prereq[] = [...AGENT_PREREQS];
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function browserMissing(): string | null {
  return existsSync(CHROMIUM) || onPath('chromium') ? null : `needs ${CHROMIUM} (Debian package chromium)`;
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  error?: string;
}

/** One HTTP request to 127.0.0.1:port made from inside `ns` (node:http: any Host header). */
async function httpIn(ns: Netns, port: number, req: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<HttpAnswer> {
  const script = `
    import { request } from 'node:http';
    const o = JSON.parse(process.argv[1]);
    const done = (v) => { process.stdout.write(JSON.stringify(v)); process.exit(0); };
    const r = request({ host: '127.0.0.1', port: o.port, path: o.path, method: o.method, headers: o.headers, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c.toString('utf8'); });
      const end = () => done({ status: res.statusCode, headers: res.headers, body: body.slice(0, 1_000_000) });
      res.on('end', end);
      setTimeout(end, 700); // an event stream does not end
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', (e) => done({ status: 0, headers: {}, body: '', error: e.code ?? e.message }));
    if (o.body !== undefined) r.write(o.body);
    r.end();`;
  const arg = JSON.stringify({ port, method: req.method ?? 'GET', path: req.path, headers: { host: `127.0.0.1:${port}`, ...req.headers }, body: req.body });
  const r = await ns.exec([process.execPath, '--input-type=module', '-e', script, arg], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout) as HttpAnswer;
}

/** A TCP connection attempt from inside `ns`: 'connected', or the error (ECONNREFUSED, timeout…). */
async function tcpConnect(ns: Netns, host: string, port: number): Promise<string> {
  const script = `
    import { connect } from 'node:net';
    const s = connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 2000 });
    s.on('connect', () => { console.log('connected'); s.destroy(); });
    s.on('timeout', () => { console.log('timeout'); s.destroy(); });
    s.on('error', (e) => console.log(e.code ?? e.message));`;
  const r = await ns.exec([process.execPath, '--input-type=module', '-e', script, host, String(port)], { timeoutMs: 10_000 });
  return r.stdout.trim();
}

/** `meshd ui --json` on the owner: a fresh one-time link. */
async function uiLink(node: MeshNode): Promise<{ url: string; port: number; code: string }> {
  const r = await meshdJson<{ url: string; port: number }>(node, ['ui']);
  const m = /^http:\/\/127\.0\.0\.1:(\d+)\/#code=([A-Za-z0-9_-]{43})$/.exec(r.url);
  assert.ok(m, `meshd ui printed an unexpected link: ${r.url}`);
  assert.equal(Number(m[1]), r.port);
  return { url: r.url, port: r.port, code: m[2]! };
}

describe('meshd ui: the dashboard on a live three-host mesh', { timeout: 300_000 }, () => {
  let mesh: Mesh | undefined;
  let a!: MeshNode;
  let b!: MeshNode;
  let c!: MeshNode;

  before(async () => {
    if (missingPrereqs(UI_PREREQS).length > 0 || browserMissing() !== null) return;
    const lab = await Lab.create();
    try {
      const internet = await Internet.create(lab);
      const hostA = await addHost(internet, 'a');
      const homeA = join(lab.workDir, 'home-a');
      // the owner hosts the DWN and a relay (plain HTTP inside the lab)
      const up = await meshdJson<{ identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string }; network: { id: string } }>(
        { ns: hostA.ns, home: homeA, name: 'a' },
        ['up', '--create', 'ui', '--dwn-listen', '0.0.0.0', '--relay', '--relay-insecure-http'],
      );
      a = { name: 'a', host: hostA, ns: hostA.ns, home: homeA, ...up.identity };
      mesh = { lab, internet, owner: a, nodes: [a], networkId: up.network.id, endpoint: `http://${hostA.addr}:${DWN_PORT}`, close: () => lab.close() };
      const pb = await prepareJoiner(mesh, 'b');
      const pc = await prepareJoiner(mesh, 'c');
      // c and a exchange no UDP at all: their traffic can only go through the relay (TCP)
      for (const rule of [
        ['OUTPUT', '-p', 'udp', '-d', hostA.addr, '-j', 'DROP'],
        ['INPUT', '-p', 'udp', '-s', hostA.addr, '-j', 'DROP'],
      ]) {
        const r = await pc.host.ns.exec(['iptables', '-I', ...rule]);
        assert.equal(r.code, 0, `iptables in c: ${r.stderr}`);
      }
      [b, c] = await Promise.all([upJoiner(mesh, 'b', pb), upJoiner(mesh, 'c', pc)]);
      mesh.nodes.push(b, c);
      const ready = await waitUntil(async () => {
        const s = await daemonStatus(a);
        const pb2 = peerOf(s, b);
        const pc2 = peerOf(s, c);
        return pb2?.online && pb2.path === 'direct' && pc2?.online && pc2.path === 'relay' ? s : undefined;
      }, 45_000, 500);
      if (!ready) {
        const s = await daemonStatus(a);
        assert.fail(`a never saw b direct and c relayed: ${JSON.stringify(s.peers.map((p) => ({ host: p.hostname, online: p.online, path: p.path })))}`);
      }
    } catch (e) {
      await lab.close();
      mesh = undefined;
      throw e;
    }
  });
  after(() => mesh?.close());

  function ready(t: Parameters<typeof requirePrereqs>[0]): boolean {
    if (!requirePrereqs(t, UI_PREREQS)) return false;
    const m = browserMissing();
    if (m !== null) {
      if (process.env.MESHD_REQUIRE_PREREQS === '1') throw new Error(`missing prerequisite in CI: ${m}`);
      t.skip(m);
      return false;
    }
    return mesh !== undefined;
  }

  test('the listener answers on 127.0.0.1 only, and only to a session', async (t) => {
    if (!ready(t)) return;
    const { port, code } = await uiLink(a);
    // loopback answers (the checks below could fail)…
    assert.equal(await tcpConnect(a.ns, '127.0.0.1', port), 'connected');
    const page = await httpIn(a.ns, port, { path: '/' });
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>meshd dashboard<\/title>/);
    // …the mesh IP and the LAN address do not, from a itself nor from a peer
    for (const [from, host] of [
      [a, a.meshIP],
      [a, a.host.addr],
      [b, a.meshIP],
      [b, a.host.addr],
    ] as const) {
      const r = await tcpConnect(from.ns, host, port);
      assert.notEqual(r, 'connected', `${from.name} reached the dashboard at ${host}:${port}`);
    }
    // no session: 401 for the API, the event stream and the actions
    for (const path of ['/api/state', '/api/events']) {
      const r = await httpIn(a.ns, port, { path });
      assert.equal(r.status, 401, `${path} without a session answered ${r.status}`);
      assert.doesNotMatch(r.body, /"peers"/);
    }
    const origin = `http://127.0.0.1:${port}`;
    const act = await httpIn(a.ns, port, { method: 'POST', path: '/api/action', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'remove', id: b.did }) });
    assert.equal(act.status, 401);
    const forged = await httpIn(a.ns, port, { path: '/api/state', headers: { cookie: `meshd_ui_${port}=${code}` } });
    assert.equal(forged.status, 401, 'the code itself is not a session token');
    // DNS rebinding and cross-site requests
    assert.equal((await httpIn(a.ns, port, { path: '/', headers: { host: `evil.example:${port}` } })).status, 403);
    const crossLogin = await httpIn(a.ns, port, { method: 'POST', path: '/api/login', headers: { origin: 'http://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
    assert.equal(crossLogin.status, 403);
    // the code works once, from the dashboard's own origin
    const login = () => httpIn(a.ns, port, { method: 'POST', path: '/api/login', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
    const first = await login();
    assert.equal(first.status, 200);
    const cookie = String(first.headers['set-cookie'] ?? '');
    assert.match(cookie, new RegExp(`^meshd_ui_${port}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/`));
    assert.equal((await login()).status, 401, 'a spent code was accepted again');
    const session = cookie.split(';')[0]!;
    const state = await httpIn(a.ns, port, { path: '/api/state', headers: { cookie: session } });
    assert.equal(state.status, 200);
    const view = JSON.parse(state.body) as { peers: { did: string }[] };
    assert.deepEqual(view.peers.map((p) => p.did).sort(), [b.did, c.did].sort());
    // with a session, an action from another origin is still refused
    const csrf = await httpIn(a.ns, port, { method: 'POST', path: '/api/action', headers: { cookie: session, origin: 'http://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'remove', id: b.did }) });
    assert.equal(csrf.status, 403);
    assert.ok(peerOf(await daemonStatus(a), b), 'b was removed by a refused request');
  });

  test('in Chromium: peers and paths, live offline, a confirmed removal, a non-blank screenshot', async (t) => {
    if (!ready(t)) return;
    const dir = join(mesh!.lab.workDir, 'chromium');
    mkdirSync(dir, { recursive: true });
    const pidFile = join(dir, 'pid');
    // Chromium runs inside a's namespace, where the dashboard's 127.0.0.1 is; the shell's pid
    // becomes Chromium's (exec all the way), so it can be killed by pid whatever happens.
    const wrapper = join(dir, 'chromium-in-ns.sh');
    writeFileSync(wrapper, `#!/bin/sh\necho $$ > '${pidFile}'\nexec ip netns exec '${a.ns.name}' '${CHROMIUM}' "$@"\n`, { mode: 0o755 });
    let context: BrowserContext | undefined;
    try {
      const launchOptions = {
        executablePath: wrapper,
        headless: true,
        args: CHROMIUM_ARGS,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TMPDIR: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache') },
        downloadsPath: join(dir, 'downloads'),
        tracesDir: join(dir, 'traces'),
        artifactsDir: join(dir, 'artifacts'),
        viewport: { width: 1280, height: 1000 },
        timeout: 60_000,
      };
      context = await chromium.launchPersistentContext(join(dir, 'profile'), launchOptions);
      const page: Page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      const { url } = await uiLink(a);
      await page.goto(url);
      const row = (did: string) => `#peers tbody tr[data-did="${did}"]`;
      await page.waitForSelector(`${row(b.did)}[data-online="true"]`, { timeout: 15_000 });
      await page.waitForSelector(`${row(c.did)}[data-online="true"]`, { timeout: 15_000 });
      assert.equal(new URL(page.url()).hash, '', 'the one-time code stays in the address bar');

      // every peer, with the path the daemon reports
      const status = await daemonStatus(a);
      assert.equal(await page.locator('#peers tbody tr').count(), status.peers.length);
      for (const p of status.peers) {
        assert.equal(await page.getAttribute(row(p.did), 'data-path'), p.path, `${p.hostname}: path on the page`);
        assert.equal(await page.locator(`${row(p.did)} td.path`).textContent(), p.path);
        assert.equal(await page.getAttribute(`#graph line.edge[data-did="${p.did}"]`, 'data-path'), p.path, `${p.hostname}: edge in the graph`);
        assert.ok((await page.locator(`#graph g.node[data-did="${p.did}"]`).count()) === 1, `${p.hostname}: node in the graph`);
      }
      assert.equal(await page.getAttribute(row(b.did), 'data-path'), 'direct');
      assert.equal(await page.getAttribute(row(c.did), 'data-path'), 'relay');
      // the owner's panels: the ACL policy written by `up --create`, recent events
      assert.match((await page.locator('#acl').textContent()) ?? '', /"version": 1/);
      assert.ok((await page.locator('#events li').count()) > 0, 'no recent events shown');

      // a screenshot, decoded: many colours, no one colour covering nearly everything
      const png = await page.screenshot();
      writeFileSync(join(dir, 'dashboard.png'), png);
      const img = decodePng(png);
      assert.equal(img.width, 1280);
      const stats = colourStats(img);
      assert.ok(stats.distinct >= 64, `a blank-looking screenshot: ${stats.distinct} colours`);
      assert.ok(stats.dominantShare < 0.9, `one colour covers ${(stats.dominantShare * 100).toFixed(1)}% of the screenshot`);

      // b goes down: the page says so within 2 s
      await meshdOk(b, ['down']);
      const downAt = Date.now();
      await page.waitForSelector(`${row(b.did)}[data-online="false"]`, { timeout: 15_000 });
      const shownMs = Date.now() - downAt;
      t.diagnostic(`b shown offline ${shownMs} ms after \`meshd down\` returned`);
      assert.ok(shownMs <= 2000, `b showed offline ${shownMs} ms after \`meshd down\` returned (want ≤ 2000)`);
      assert.equal(await page.getAttribute(`#graph g.node[data-did="${b.did}"]`, 'data-online'), 'false');
      assert.equal(await page.getAttribute(row(c.did), 'data-online'), 'true', 'c went offline with b');

      // Remove needs a confirmation: cancelled, nothing happens
      const removeC = `button[data-action="remove"][data-id="${c.did}"]`;
      await page.click(removeC);
      await page.waitForSelector('#confirm[open]', { timeout: 5000 });
      assert.match((await page.locator('#confirm-text').textContent()) ?? '', /Remove .* from the network\?/);
      await page.click('#confirm-cancel');
      await sleep(1500); // three updates
      assert.equal(await page.locator(row(c.did)).count(), 1, 'c is gone though the removal was cancelled');
      assert.ok(peerOf(await daemonStatus(a), c), 'the cancelled removal removed c');
      // confirmed: c leaves the network (the same path as `meshd peer remove`) and the page
      await page.click(removeC);
      await page.waitForSelector('#confirm[open]', { timeout: 5000 });
      await page.click('#confirm-ok');
      await page.waitForSelector(row(c.did), { state: 'detached', timeout: 30_000 });
      await page.waitForSelector(`#graph g.node[data-did="${c.did}"]`, { state: 'detached', timeout: 5000 });
      await page.locator('#notice', { hasText: 'Done: remove' }).waitFor({ timeout: 10_000 });
      const list = await meshdJson<{ peers: { did: string }[] }>(a, ['peer', 'list']);
      assert.ok(!list.peers.some((p) => p.did === c.did), '`meshd peer list` still lists c');

      // an invite made on the command line shows up, and is revoked from the page
      const inv = await meshdJson<{ id: string }>(a, ['invite', '--label', 'for-the-dashboard']);
      const inviteRow = `#invites tbody tr[data-id="${inv.id}"]`;
      await page.waitForSelector(inviteRow, { timeout: 15_000 });
      assert.match((await page.locator(inviteRow).textContent()) ?? '', /open.*for-the-dashboard/);
      await page.click(`button[data-action="revoke-invite"][data-id="${inv.id}"]`);
      await page.waitForSelector('#confirm[open]', { timeout: 5000 });
      await page.click('#confirm-ok');
      await page.waitForSelector(inviteRow, { state: 'detached', timeout: 15_000 });
      await page.locator('#notice', { hasText: 'Done: revoke-invite' }).waitFor({ timeout: 10_000 });
      const invites = await meshdJson<{ invites: { id: string }[] }>(a, ['invite', 'list']);
      assert.ok(!invites.invites.some((i) => i.id === inv.id), '`meshd invite list` still lists the revoked invite');
      assert.deepEqual(pageErrors, [], 'the page threw');
    } finally {
      await Promise.race([context?.close().catch(() => undefined), sleep(10_000)]);
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 1) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
  });
});

/**
 * The DWN on PostgreSQL: the real @web5/dwn-server started the way `meshd dwn serve --storage`
 * starts it, a network created and a peer added through the control plane, the records read
 * back, then the server restarted and the records read again from PostgreSQL.
 *
 * Needs MESHD_TEST_POSTGRES_URL (postgres://USER:PASSWORD@HOST:PORT/DB of a role that may create
 * databases) and psql. Each run works in a database of its own, dropped at the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrereqs } from '../helpers/prereqs.js';
import { waitForMap } from '../helpers/control.js';
import { describeDwnStorage, parseDwnStorage, startDwnServer, type RunningDwnServer } from '../../src/dwn/server.js';
import { initProfile } from '../../src/identity/profile.js';
import { createNetwork, joinNetwork } from '../../src/control/network-ops.js';
import { addPeer } from '../../src/control/peer-ops.js';
import { ControlClient } from '../../src/control/control-client.js';
import type { ControlContext } from '../../src/control/session.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;

/** Run SQL as the test role on `database` (password through PGPASSWORD, not argv). */
function psql(adminUrl: URL, database: string, sql: string): string {
  const u = new URL(adminUrl.href);
  const password = decodeURIComponent(u.password);
  u.password = '';
  u.pathname = `/${database}`;
  return execFileSync('psql', ['-v', 'ON_ERROR_STOP=1', '-qAtX', '-d', u.href, '-c', sql], {
    env: { ...process.env, PGPASSWORD: password },
    encoding: 'utf8',
  }).trim();
}

function mkCtx(root: string, name: string): ControlContext {
  const home = join(root, name);
  return { home, profile: initProfile(home).profile };
}

test('a network on a DWN stored in PostgreSQL survives a server restart', { timeout: 120_000 }, async (t) => {
  if (!requirePrereqs(t, ['postgres'])) return;
  const admin = new URL(process.env.MESHD_TEST_POSTGRES_URL!);
  const adminDb = admin.pathname.slice(1) || 'postgres';
  const database = `meshd_t_${tag}`.toLowerCase();
  psql(admin, adminDb, `CREATE DATABASE "${database}"`);
  const root = mkdtempSync(join(tmpdir(), `meshd-pg-${tag}-`));
  const clients: ControlClient[] = [];
  let server: RunningDwnServer | undefined;
  try {
    const url = new URL(admin.href);
    url.pathname = `/${database}`;
    // the same parsing and start-up `meshd dwn serve --storage <url>` uses
    const storage = parseDwnStorage(url.href);
    assert.equal(storage.kind, 'postgres');
    const dataDir = join(root, 'dwn');
    server = await startDwnServer({ dataDir, port: 0, host: '127.0.0.1', storage, logLevel: 'info' });
    const port = server.port;

    const owner = mkCtx(root, 'owner');
    const dev = mkCtx(root, 'dev');
    const name = `pgnet-${tag}`;
    const { networkId } = await createNetwork(owner, { name, endpoint: server.url, nodeInfo: { hostname: `owner-${tag}` } });
    await addPeer(owner, dev.profile.did);
    await joinNetwork(dev, { anchor: owner.profile.did, networkId, endpoint: server.url, nodeInfo: { hostname: `dev-${tag}` } });

    const sees = (c: ControlContext, other: ControlContext, hostname: string) => async () => {
      const client = await ControlClient.open({ ctx: c, cache: false });
      clients.push(client);
      client.start();
      const m = await waitForMap(client, (m) => m.peers.some((p) => p.did === other.profile.did && p.hostname === hostname), 10_000);
      assert.equal(m.network.name, name);
      await client.stop();
      return m;
    };
    const before = await sees(owner, dev, `dev-${tag}`)();
    await sees(dev, owner, `owner-${tag}`)();

    // the records are in PostgreSQL, and the log shows the storage URL but not the password
    const rows = Number(psql(admin, database, 'SELECT count(*) FROM "messageStoreMessages"'));
    assert.ok(rows >= 4, `${rows} messages stored`);
    const log = readFileSync(join(dataDir, 'dwn-server.log'), 'utf8');
    assert.ok(log.includes(describeDwnStorage(storage)), 'the server logged its storage URL');
    if (admin.password !== '') assert.equal(log.includes(`:${admin.password}@`), false, 'password in the server log');

    // restart on the same port: everything is read back from PostgreSQL
    await server.stop();
    server = await startDwnServer({ dataDir, port, host: '127.0.0.1', storage });
    const after = await sees(owner, dev, `dev-${tag}`)();
    assert.deepEqual(
      after.peers.map((p) => [p.did, p.meshIP, p.wireguardKey]),
      before.peers.map((p) => [p.did, p.meshIP, p.wireguardKey]),
    );
    await sees(dev, owner, `owner-${tag}`)();
    assert.equal(Number(psql(admin, database, 'SELECT count(*) FROM "messageStoreMessages"')), rows);
  } finally {
    for (const c of clients) await c.stop();
    await server?.stop();
    psql(admin, adminDb, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    rmSync(root, { recursive: true, force: true });
  }
});

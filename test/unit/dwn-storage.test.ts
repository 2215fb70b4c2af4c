/**
 * `meshd dwn serve --storage`: URLs become the server's four store URLs (PostgreSQL's password
 * kept apart, as PGPASSWORD); bad URLs are usage errors on one line that never show a password.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../../src/errors.js';
import { defaultStorage, describeDwnStorage, parseDwnStorage, storageEnv } from '../../src/dwn/server.js';
import { runCliCaptured } from '../helpers/in-process-cli.js';

const SECRET = 's3cr%2Ft-pw';

test('postgres URLs: password moved out of the URL, decoded, and passed as PGPASSWORD', () => {
  const s = parseDwnStorage(`postgres://meshd:${SECRET}@db.example:6543/dwn_prod?sslmode=require`);
  assert.deepEqual(s, { kind: 'postgres', url: 'postgres://meshd@db.example:6543/dwn_prod?sslmode=require', password: 's3cr/t-pw' });
  const env = storageEnv(s);
  for (const k of ['DWN_STORAGE_MESSAGES', 'DWN_STORAGE_DATA', 'DWN_STORAGE_EVENTS', 'DWN_STORAGE_RESUMABLE_TASKS']) {
    assert.equal(env[k], 'postgres://meshd@db.example:6543/dwn_prod?sslmode=require');
  }
  assert.equal(env.PGPASSWORD, 's3cr/t-pw');
  assert.equal('DWN_STORAGE' in env, false);
  assert.equal(describeDwnStorage(s).includes('s3cr'), false);
  // postgresql:// is the same; no password leaves PGPASSWORD to the environment
  const p = parseDwnStorage('postgresql://meshd@[::1]/dwn');
  assert.deepEqual(p, { kind: 'postgres', url: 'postgres://meshd@[::1]/dwn', password: undefined });
  assert.equal('PGPASSWORD' in storageEnv(p), false);
});

test('sqlite and level URLs resolve to absolute paths; the default is SQLite in the data directory', () => {
  assert.deepEqual(parseDwnStorage('sqlite://dwn-data/dwn.db'), { kind: 'sqlite', file: resolve('dwn-data/dwn.db') });
  assert.deepEqual(parseDwnStorage('sqlite:///var/lib/meshd/dwn.db'), { kind: 'sqlite', file: '/var/lib/meshd/dwn.db' });
  assert.deepEqual(parseDwnStorage('level:///var/lib/meshd/dwn'), { kind: 'level', dir: '/var/lib/meshd/dwn' });
  assert.equal(storageEnv(parseDwnStorage('level:///srv/dwn')).DWN_STORAGE_EVENTS, 'level:///srv/dwn');
  assert.deepEqual(defaultStorage('/srv/state/dwn'), { kind: 'sqlite', file: '/srv/state/dwn/dwn.db' });
  assert.equal(storageEnv(defaultStorage('/srv/state/dwn')).DWN_STORAGE_MESSAGES, 'sqlite:///srv/state/dwn/dwn.db');
});

test('bad storage URLs are UsageErrors with a hint, and never repeat the password', () => {
  const bad = [
    'mysql://u:pw@h/db',
    'http://x',
    '/just/a/path',
    '',
    'sqlite://',
    'level://',
    'sqlite:///tmp/with space/dwn.db',
    'sqlite:///tmp/dwn.db?mode=ro',
    `postgres://u:${SECRET}@/db`,
    `postgres://:${SECRET}@host/db`,
    `postgres://u:${SECRET}@host`,
    `postgres://u:${SECRET}@host/`,
    `postgres://u:${SECRET}@host/db/extra`,
    `postgres://u:${SECRET}@host:99999/db`,
    `postgres://u:${SECRET}@host/db#frag`,
    `postgres://u@host/db?password=${SECRET}`,
    'postgres://u:%E0%A4%A@host/db',
  ];
  for (const input of bad) {
    assert.throws(
      () => parseDwnStorage(input),
      (e: unknown) => {
        assert.ok(e instanceof UsageError, `${input}: ${String(e)}`);
        assert.ok(e.hint, `${input}: no hint`);
        assert.equal(e.message.includes('\n'), false);
        assert.equal(e.message.includes('s3cr') || e.hint.includes('s3cr'), false, `${input}: ${e.message}`);
        return true;
      },
      input,
    );
  }
});

test('meshd dwn serve --storage with a bad URL exits 2 with one line and no password', async () => {
  const home = mkdtempSync(join(tmpdir(), 'meshd-storage-'));
  try {
    const r = await runCliCaptured(['--home', home, 'dwn', 'serve', '--storage', `postgres://u:${SECRET}@host`]);
    assert.equal(r.code, 2);
    const all = [r.stdout, ...r.stderr].join('\n');
    assert.equal(all.includes('s3cr'), false, all);
    assert.match(r.stderr[0] ?? '', /database name/);
    assert.ok(r.stderr.length <= 2, all);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

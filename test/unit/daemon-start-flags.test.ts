/**
 * The background daemon (`meshd up`, and so bench/scale.ts and the lab tests, which start it the
 * way a user does) runs with the daemon's node flags and malloc setting: read back from the
 * held child's /proc/PID/cmdline and environ before it is released, then aborted. (The systemd
 * unit carries the same: test/unit/ops-cli.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DAEMON_ENV, DAEMON_NODE_ARGS, spawnHeldDaemon } from '../../src/daemon/background.js';

function procList(pid: number, file: 'cmdline' | 'environ'): string[] {
  return readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter((s) => s !== '');
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) return true;
    await sleep(25);
  }
  return false;
}

test('the background daemon starts with DAEMON_NODE_ARGS and DAEMON_ENV; an explicit MALLOC_ARENA_MAX wins', async (t) => {
  if (process.platform !== 'linux') return t.skip('reads /proc');
  const home = mkdtempSync(join(tmpdir(), 'meshd-flags-'));
  const saved = process.env.MALLOC_ARENA_MAX;
  try {
    delete process.env.MALLOC_ARENA_MAX;
    const d = spawnHeldDaemon(home, ['up', '--foreground', '--home', home]);
    const argv = procList(d.pid, 'cmdline');
    const env = procList(d.pid, 'environ');
    d.abort();
    const bin = argv.findIndex((a) => a.endsWith('/bin/meshd.js'));
    assert.ok(bin > 0, `runs bin/meshd.js: ${argv.join(' ')}`);
    assert.deepEqual(argv.slice(1, bin), DAEMON_NODE_ARGS, 'node flags before the script');
    assert.deepEqual(argv.slice(bin + 1), ['up', '--foreground', '--home', home]);
    for (const [k, v] of Object.entries(DAEMON_ENV)) assert.ok(env.includes(`${k}=${v}`), `${k}=${v} in its environment`);
    assert.ok(env.includes('MESHD_BACKGROUND=1'));
    assert.ok(await gone(d.pid), 'the aborted daemon exits');

    process.env.MALLOC_ARENA_MAX = '3';
    const e = spawnHeldDaemon(home, ['up', '--foreground', '--home', home]);
    const env2 = procList(e.pid, 'environ');
    e.abort();
    assert.ok(env2.includes('MALLOC_ARENA_MAX=3') && !env2.includes('MALLOC_ARENA_MAX=2'), 'the caller\'s setting wins');
    assert.ok(await gone(e.pid), 'the aborted daemon exits');
  } finally {
    if (saved === undefined) delete process.env.MALLOC_ARENA_MAX;
    else process.env.MALLOC_ARENA_MAX = saved;
    rmSync(home, { recursive: true, force: true });
  }
});

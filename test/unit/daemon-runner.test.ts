import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDaemon } from '../../src/daemon/daemon.js';
import { callDaemon, socketPath } from '../../src/daemon/api.js';
import { acquireDaemonLock, lockPath, runningDaemonPid } from '../../src/daemon/lock.js';
import { silentLogger } from '../../src/daemon/log.js';
import { ensurePrivateDir } from '../../src/identity/state-files.js';
import { MeshdError } from '../../src/errors.js';
import { tempDir } from '../helpers/cli.js';

function agent(events: string[]) {
  return {
    start: async () => void events.push('start'),
    stop: async () => void events.push('stop'),
    status: () => ({ peers: [] }),
  };
}

test('one daemon per home; control socket 0600; shutdown over the socket cleans up', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  ensurePrivateDir(home);
  const events: string[] = [];
  const h = await runDaemon({ home, log: silentLogger, agent: agent(events), handleSignals: false });
  assert.equal(h.state(), 'running');
  assert.equal(statSync(socketPath(home)).mode & 0o777, 0o600);
  assert.equal(runningDaemonPid(home), process.pid);
  await assert.rejects(runDaemon({ home, log: silentLogger, agent: agent([]), handleSignals: false }), (e: unknown) => e instanceof MeshdError && e.code === 'E_DAEMON_RUNNING');
  const s = await callDaemon<{ state: string; peers: unknown[] }>(home, 'GET', '/v0/status');
  assert.equal(s.state, 'running');
  assert.deepEqual(s.peers, []);
  await callDaemon(home, 'POST', '/v0/shutdown');
  await h.stopped;
  assert.deepEqual(events, ['start', 'stop']);
  assert.equal(existsSync(socketPath(home)), false);
  assert.equal(existsSync(lockPath(home)), false);
  await assert.rejects(callDaemon(home, 'GET', '/v0/status'), (e: unknown) => e instanceof MeshdError && e.code === 'E_NO_DAEMON');
});

test('a lock left by a killed process is taken over; a live one is not', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  ensurePrivateDir(home);
  const child = spawn(process.execPath, ['-e', 'setTimeout(()=>{}, 60000)']);
  t.after(() => child.kill('SIGKILL'));
  writeFileSync(lockPath(home), `${child.pid}\n`);
  assert.throws(() => acquireDaemonLock(home), (e: unknown) => e instanceof MeshdError && e.code === 'E_DAEMON_RUNNING');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const lock = acquireDaemonLock(home);
  assert.equal(runningDaemonPid(home), process.pid);
  lock.release();
  assert.equal(existsSync(lockPath(home)), false);
});

test('a failing agent start leaves no lock or socket behind', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  ensurePrivateDir(home);
  const failing = { start: async () => Promise.reject(new MeshdError('E_TUN', 'no tun')), stop: async () => undefined, status: () => ({}) };
  await assert.rejects(runDaemon({ home, log: silentLogger, agent: failing, handleSignals: false }), /no tun/);
  assert.equal(existsSync(lockPath(home)), false);
  assert.equal(existsSync(socketPath(home)), false);
});

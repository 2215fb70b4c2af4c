/**
 * The daemon's link monitor for real, in a namespace this test creates: `ip monitor` reports an
 * address added there (so the agent need not poll), and it dies with the daemon even when the
 * daemon is killed with SIGKILL (setpriv --pdeathsig): nothing is left in the namespace.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { netnsPids } from '../../src/lab/index.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { waitUntil } from './agent-helpers.js';
import { LAB_PREREQS, labFor } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/link-monitor.js', import.meta.url));

test('link monitor: an address change is an event; the monitor dies with its daemon', async (t) => {
  if (!requirePrereqs(t, LAB_PREREQS)) return;
  const lab = await labFor(t);
  const ns = await lab.addNamespace('lw');
  const daemon = ns.node(FIXTURE);
  await daemon.waitFor('ready', 10_000);
  assert.equal((await netnsPids(ns.name)).length, 2, 'the fixture and its monitor');
  await ns.ip('addr', 'add', '192.0.2.55/32', 'dev', 'lo');
  await daemon.waitFor('event', 5000);
  assert.doesNotMatch(daemon.stdout(), /exit/);
  daemon.signal('SIGKILL');
  await daemon.exited;
  const gone = await waitUntil(async () => (await netnsPids(ns.name)).length === 0, 5000, 50);
  assert.ok(gone, `processes left in the namespace after the daemon was killed: ${(await netnsPids(ns.name)).join(' ')}`);
});

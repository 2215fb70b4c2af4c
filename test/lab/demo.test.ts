import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { requirePrereqs } from '../helpers/prereqs.js';

const DEMO = fileURLToPath(new URL('../../src/demo/main.js', import.meta.url));

test('npm run demo: three hosts (public, cone NAT, symmetric NAT) mesh, status, removal cut-off, cleanup', (t) => {
  if (!requirePrereqs(t, ['root', 'netns', 'tun', 'iptables', 'native'])) return;
  const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', timeout: 240_000 });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 0, out);
  // every pair reached each other, the removed host was cut off, the others kept talking
  assert.equal((out.match(/^ {2}ok /gm) ?? []).length, 10, out);
  assert.doesNotMatch(out, /BAD/);
  assert.match(out, /(Network key rotated|The owner's daemon is rotating the network key) to epoch 1/);
  assert.match(out, /Demo passed/);
  // nothing left behind: no namespace of this run
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(ns, new RegExp(`mdl${(r.pid ?? 0).toString(36)}-`));
});

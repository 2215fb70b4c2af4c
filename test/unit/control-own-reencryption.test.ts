/**
 * When a device re-writes its own records after a key rotation (src/control/own-reencryption.ts):
 * after a wait spread over a window, never in the window's first fifth, once per epoch.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OwnReencryption } from '../../src/control/own-reencryption.js';

test('due only after its wait, then until done; the caller is told when the wait ends', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let calls = 0;
  const r = new OwnReencryption(3, { withinMs: 100, random: () => 0.5, onDue: () => calls++ });
  try {
    assert.equal(r.due(3), false, 'nothing to do under the epoch it is in');
    assert.equal(r.due(4), false, 'a new epoch starts the wait (0.2 + 0.8 × 0.5 of 100 ms = 60 ms)');
    t.mock.timers.tick(59);
    assert.equal(r.due(4), false, 'not before the wait ends');
    assert.equal(calls, 0);
    t.mock.timers.tick(1);
    assert.equal(calls, 1);
    assert.equal(r.due(4), true);
    assert.equal(r.due(4), true, 'still due until done (a failed write is tried again)');
    r.done(4);
    assert.equal(r.due(4), false);
    // a later rotation starts its own wait
    assert.equal(r.due(5), false);
    t.mock.timers.tick(60);
    assert.equal(calls, 2);
    assert.equal(r.due(5), true);
  } finally {
    r.stop();
  }
});

test('the waits of many devices spread over the window, none in its first fifth', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const dueAt: number[] = [];
  for (const u of [0, 0.25, 0.5, 0.75, 0.999]) {
    const r = new OwnReencryption(0, { withinMs: 1000, random: () => u, onDue: () => dueAt.push(elapsed) });
    assert.equal(r.due(1), false);
  }
  let elapsed = 0;
  for (elapsed = 1; elapsed <= 1100; elapsed++) t.mock.timers.tick(1);
  assert.deepEqual(dueAt, [200, 400, 600, 800, 999]);
});

test('done before the wait ends (the heartbeat re-wrote it) cancels it', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let calls = 0;
  const r = new OwnReencryption(0, { withinMs: 20, random: () => 0, onDue: () => calls++ });
  r.due(1);
  r.done(1);
  t.mock.timers.tick(40);
  assert.equal(calls, 0);
  assert.equal(r.due(1), false);
});

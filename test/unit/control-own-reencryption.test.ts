/**
 * When a device re-writes its own records after a key rotation (src/control/own-reencryption.ts):
 * once the owner's re-write of its node record carries the new epoch, or after the fallback wait.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { OwnReencryption } from '../../src/control/own-reencryption.js';

test('waits for its node record under the new epoch, then is due once', () => {
  let fallbacks = 0;
  const r = new OwnReencryption(3, { fallbackMs: 60_000, jitterMs: 0, onFallback: () => fallbacks++ });
  try {
    assert.equal(r.due(3, 3), false, 'nothing to do under the epoch it is in');
    assert.equal(r.due(4, 3), false, 'the new network record alone: wait for the owner');
    assert.equal(r.due(4, 3), false);
    assert.equal(r.due(4, 4), true, 'the owner re-wrote its node record');
    assert.equal(r.due(4, 4), true, 'still due until done (a failed write is tried again)');
    r.done(4);
    assert.equal(r.due(4, 4), false);
    assert.equal(fallbacks, 0);
  } finally {
    r.stop();
  }
});

test('the fallback wait ends: due without the owner, and the caller is told to look again', async () => {
  let fallbacks = 0;
  const r = new OwnReencryption(0, { fallbackMs: 30, jitterMs: 20, random: () => 0.5, onFallback: () => fallbacks++ });
  try {
    assert.equal(r.due(1, 0), false);
    await sleep(25);
    assert.equal(r.due(1, 0), false, 'not before fallback + jitter (40 ms)');
    await sleep(40);
    assert.equal(fallbacks, 1);
    assert.equal(r.due(1, 0), true);
    r.done(1);
    assert.equal(r.due(1, 0), false);
    // a later rotation starts its own wait
    assert.equal(r.due(2, 1), false);
    await sleep(80);
    assert.equal(fallbacks, 2);
    assert.equal(r.due(2, 1), true);
  } finally {
    r.stop();
  }
});

test('stop cancels the fallback', async () => {
  let fallbacks = 0;
  const r = new OwnReencryption(0, { fallbackMs: 10, jitterMs: 0, onFallback: () => fallbacks++ });
  r.due(1, 0);
  r.stop();
  await sleep(40);
  assert.equal(fallbacks, 0);
});

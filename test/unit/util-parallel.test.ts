import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { inParallel, prefetch } from '../../src/util/parallel.js';

test('prefetch: at most `width` in flight, results in order while later ones run', async () => {
  let inFlight = 0;
  let most = 0;
  const started: number[] = [];
  const answers = prefetch([5, 1, 4, 2, 3, 0], 3, async (x) => {
    started.push(x);
    inFlight++;
    most = Math.max(most, inFlight);
    await sleep(x * 3);
    inFlight--;
    return x * 10;
  });
  assert.equal(answers.length, 6);
  assert.deepEqual(await Promise.all(answers), [50, 10, 40, 20, 30, 0]);
  assert.equal(most, 3);
  assert.deepEqual(started, [5, 1, 4, 2, 3, 0]);
});

test('prefetch: a failure is seen where it is awaited; later items are not started; no unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const started: number[] = [];
    const answers = prefetch([0, 1, 2, 3, 4, 5, 6, 7], 2, async (x) => {
      started.push(x);
      await sleep(2);
      if (x === 1) throw new Error('read failed');
      return x;
    });
    assert.equal(await answers[0], 0);
    await assert.rejects(answers[1]!, /read failed/);
    await sleep(30);
    assert.ok(started.length <= 4, `started ${started.join(',')}`);
    await assert.rejects(answers[7]!, /read failed/);
    await sleep(5);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('inParallel runs everything with bounded width, and an empty list is fine', async () => {
  const seen: number[] = [];
  await inParallel([1, 2, 3, 4], 2, async (x) => void seen.push(x));
  assert.deepEqual(seen.sort(), [1, 2, 3, 4]);
  await inParallel([], 4, async () => assert.fail('no items'));
});

/** The shared clock, back-off and stop-signal wait (src/util). */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/util/backoff.js';
import { ManualClock } from '../../src/util/clock.js';
import { waitForStop } from '../../src/util/signals.js';

describe('util: clock, back-off, stop wait', () => {
  test('ManualClock: one-shot and periodic timers fire in due order as time passes, cancelled ones never', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    clock.after(30, () => fired.push(`once@${clock.now()}`));
    const every = clock.every(20, () => fired.push(`every@${clock.now()}`));
    clock.after(10, () => fired.push('cancelled')).cancel();
    clock.advance(45);
    every.cancel();
    clock.advance(100);
    assert.deepEqual(fired, ['every@20', 'once@30', 'every@40']);
    assert.equal(clock.now(), 145);
    assert.equal(clock.wallMs(), 1_700_000_000_000 + 145);
  });

  test('back-off: doubling to the cap, jitter only shortens, jitter 0 is the plain schedule', () => {
    const plain = [0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, { initialMs: 1000, maxMs: 30_000, jitter: 0 }));
    assert.deepEqual(plain, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    assert.equal(backoffDelay(-3, { jitter: 0 }), 1000, 'negative attempts start at the first delay');
    for (let n = 0; n < 8; n++) {
      const base = plain[Math.min(n, 6)]!;
      assert.equal(backoffDelay(n, { initialMs: 1000, maxMs: 30_000 }, () => 0), base);
      assert.equal(backoffDelay(n, { initialMs: 1000, maxMs: 30_000 }, () => 0.999_999), Math.round(base * (1 - 0.5 * 0.999_999)));
    }
  });

  test('waitForStop: the stopping signal or the abort ends it, other signals are handled, listeners are removed', async () => {
    const before = process.listenerCount('SIGUSR2');
    let hups = 0;
    const p = waitForStop({ stopOn: ['SIGUSR2'], on: { SIGWINCH: () => hups++ } });
    process.emit('SIGWINCH', 'SIGWINCH');
    process.emit('SIGUSR2', 'SIGUSR2');
    assert.equal(await p, 'SIGUSR2');
    assert.equal(hups, 1);
    assert.equal(process.listenerCount('SIGUSR2'), before);
    assert.equal(process.listenerCount('SIGWINCH'), 0);

    const ac = new AbortController();
    const q = waitForStop({ signal: ac.signal, stopOn: ['SIGUSR2'] });
    ac.abort();
    assert.equal(await q, 'abort');
    assert.equal(process.listenerCount('SIGUSR2'), before);
  });
});

/** The replay window: in order, out of order inside the window, too old, duplicates; against a model. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplayFilter, REPLAY_WINDOW_SIZE } from '../../src/engine/wireguard/replay.js';

describe('replay window', () => {
  test('window is at least 2048 counters (wireguard-go keeps 8128)', () => {
    assert.ok(REPLAY_WINDOW_SIZE >= 2048);
  });

  test('in order: every counter once', () => {
    const f = new ReplayFilter();
    for (let i = 0; i < 20_000; i++) assert.equal(f.validate(i), true, `counter ${i}`);
  });

  test('duplicates are refused, in and out of order', () => {
    const f = new ReplayFilter();
    assert.equal(f.validate(0), true);
    assert.equal(f.validate(0), false);
    assert.equal(f.validate(10), true);
    assert.equal(f.validate(5), true);
    assert.equal(f.validate(5), false);
    assert.equal(f.validate(10), false);
  });

  test('out of order inside the window is accepted; older than the window is refused', () => {
    const f = new ReplayFilter();
    assert.equal(f.validate(REPLAY_WINDOW_SIZE + 100), true);
    assert.equal(f.validate(100), true, 'exactly at the window edge');
    assert.equal(f.validate(99), false, 'one beyond the window');
    assert.equal(f.validate(REPLAY_WINDOW_SIZE + 99), true);
    assert.equal(f.mayAccept(REPLAY_WINDOW_SIZE + 99), false);
    assert.equal(f.mayAccept(REPLAY_WINDOW_SIZE + 98), true);
  });

  test('a big jump clears the window; counters beyond the limit are refused', () => {
    const f = new ReplayFilter();
    for (let i = 0; i < 100; i++) f.validate(i);
    assert.equal(f.validate(1_000_000), true);
    assert.equal(f.validate(1_000_000 - 50), true, 'stale bits from before the jump do not linger');
    assert.equal(f.validate(2 ** 40 + 3), true);
    assert.equal(f.validate(2 ** 40 + 3), false);
    assert.equal(f.validate(Number.MAX_SAFE_INTEGER), false);
    assert.equal(f.validate(-1), false);
  });

  test('mayAccept never changes state', () => {
    const f = new ReplayFilter();
    assert.equal(f.mayAccept(7), true);
    assert.equal(f.mayAccept(7), true);
    assert.equal(f.validate(7), true);
    assert.equal(f.mayAccept(7), false);
  });

  test('fast-check: agrees with a set-based model', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 30_000 }), fc.integer({ min: 0, max: 2 ** 40 })), { maxLength: 400 }),
        (counters) => {
          const f = new ReplayFilter();
          const seen = new Set<number>();
          let greatest = -1;
          for (const c of counters) {
            const expect = !seen.has(c) && (c > greatest || greatest - c <= REPLAY_WINDOW_SIZE);
            assert.equal(f.mayAccept(c), expect, `mayAccept(${c})`);
            assert.equal(f.validate(c), expect, `validate(${c}) after ${greatest}`);
            if (expect) {
              seen.add(c);
              greatest = Math.max(greatest, c);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

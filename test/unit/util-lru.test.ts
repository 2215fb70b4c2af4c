/** LruMap: bounded, least recently used out first, a read counts as a use; property against a model. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LruMap } from '../../src/util/lru.js';

test('never over its bound; what stays is what was used last', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 })), { maxLength: 400 }), (max, ops) => {
      const lru = new LruMap<number, number>(max);
      const order: number[] = []; // the model: most recently used last
      for (const [write, k] of ops) {
        const at = order.indexOf(k);
        if (write) {
          lru.set(k, k * 2);
          if (at >= 0) order.splice(at, 1);
          order.push(k);
          if (order.length > max) order.splice(0, order.length - (max - (max >> 3)));
        } else {
          assert.equal(lru.get(k), at >= 0 ? k * 2 : undefined);
          if (at >= 0) order.push(...order.splice(at, 1));
        }
        assert.ok(lru.size <= max);
        assert.equal(lru.size, order.length);
      }
      for (const k of order) assert.ok(lru.has(k), `${k} was used recently and is gone`);
    }),
  );
});

test('a bound that is no positive integer is refused', () => {
  assert.throws(() => new LruMap(0), RangeError);
  assert.throws(() => new LruMap(1.5), RangeError);
});

/**
 * Monotonic epochs: the highest epoch accepted survives a restart, a lower one is refused, and
 * records under the previous epoch stay usable only for the grace after a rotation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpochGuard } from '../../src/control/epochs.js';
import { readEpochFloor } from '../../src/control/local-state.js';

test('epochs only go up, across restarts; the previous epoch has a bounded grace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-epochs-'));
  try {
    const g = new EpochGuard(dir, 'net1', 1000, 5000);
    assert.equal(g.epoch, undefined);
    assert.equal(g.usable(0, 0, 'node'), false, 'nothing is usable before a network record');
    assert.equal(g.accept(3, 10_000), true);
    assert.equal(g.usable(3, 10_000, 'node'), true);
    assert.equal(g.usable(2, 10_000, 'node'), false, 'no grace for an epoch that was never current here');
    assert.equal(g.accept(4, 20_000), true);
    assert.equal(g.usable(3, 20_500, 'node'), true, 'previous epoch inside the grace');
    assert.equal(g.usable(3, 21_001, 'node'), false, 'previous epoch after the grace');
    assert.equal(g.usable(5, 20_500, 'node'), true, 'the next epoch is usable (the owner re-writes before the network record moves)');
    assert.equal(g.usable(6, 20_500, 'node'), false, 'an epoch beyond the next is not usable');
    // a device's own records keep the previous epoch longer (devices re-write them over minutes)
    assert.equal(g.usable(3, 21_001, 'endpoint'), true, "a device's endpoint inside its longer grace");
    assert.equal(g.usable(3, 24_999, 'nodeInfo'), true);
    assert.equal(g.usable(3, 25_001, 'nodeInfo'), false, "a device's nodeInfo after its grace");
    assert.equal(g.usable(3, 21_001, 'member'), false, "the owner's records keep the short grace");
    assert.equal(g.usable(2, 21_000, 'endpoint'), false, 'two epochs back is never usable');
    assert.equal(g.admits(3), false);
    assert.equal(g.accept(3, 30_000), false, 'a replayed lower epoch is refused');
    assert.equal(g.epoch, 4);
    assert.equal(readEpochFloor(dir, 'net1'), 4);
    assert.equal(readEpochFloor(dir, 'other-net'), 0);
    const restarted = new EpochGuard(dir, 'net1');
    assert.equal(restarted.highest, 4);
    assert.equal(restarted.admits(3), false, 'the floor survives a restart');
    assert.equal(restarted.admits(4), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

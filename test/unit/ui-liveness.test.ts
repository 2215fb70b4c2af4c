/**
 * The dashboard's liveness: every update pings the peers not heard from in the last moments, a
 * direct peer silent for longer than UI_OFFLINE_AFTER_MS (a relayed one UI_OFFLINE_AFTER_RELAYED_MS)
 * is offline, and nobody is called offline before the first pings had time to be answered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DataPlane } from '../../src/engine/dataplane.js';
import { UI_OFFLINE_AFTER_MS, UI_OFFLINE_AFTER_RELAYED_MS, UiLiveness } from '../../src/daemon/ui-view.js';

test('pings each update; silent too long is offline, relayed peers given longer', () => {
  let now = 50_000;
  const heard: Record<string, number | undefined> = { A: 0, B: 0, R: 0, N: undefined };
  const paths: Record<string, string> = { A: 'direct', B: 'direct', R: 'relay', N: 'none' };
  const probes: number[] = [];
  const dp = {
    probePeers: (freshMs: number) => {
      probes.push(freshMs);
      return Object.keys(heard);
    },
    status: () => ({ peers: Object.keys(heard).map((k) => ({ publicKey: k, path: paths[k], ...(heard[k] !== undefined ? { heardAgoMs: heard[k] } : {}) })) }),
  } as unknown as DataPlane;
  const live = new UiLiveness(() => now);
  // the first update: nothing offline yet, whatever the engine says
  heard.B = 60_000;
  assert.deepEqual([...live.tick(dp)], []);
  assert.equal(probes.length, 1);
  assert.ok(probes[0]! < 500, 'peers heard half a second ago are not pinged each update');
  now += 500;
  assert.deepEqual([...live.tick(dp)], []);
  now += 1000; // past the grace period: B (silent) and N (never heard) are offline
  heard.R = UI_OFFLINE_AFTER_MS + 100; // relayed: still within its longer window
  assert.deepEqual([...live.tick(dp)].sort(), ['B', 'N']);
  heard.R = UI_OFFLINE_AFTER_RELAYED_MS + 1;
  heard.A = UI_OFFLINE_AFTER_MS;
  now += 500;
  assert.deepEqual([...live.tick(dp)].sort(), ['B', 'N', 'R']);
  // a pause in updates (no page watching) starts the grace period again
  now += 60_000;
  assert.deepEqual([...live.tick(dp)], []);
  assert.deepEqual([...live.tick(undefined)], [], 'no data plane: nobody is offline by this check');
});

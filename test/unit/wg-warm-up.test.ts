/** The transport warm-up: synthetic traffic between throwaway devices, and when its passes run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DataPathWarmUp, WarmUpPlan } from '../../src/engine/warm-up.js';
import { Engine } from '../../src/engine/engine.js';
import { clampPrivateKey, privateKeyObject, publicKeyOf } from '../../src/engine/wireguard/noise-crypto.js';
import { MemoryEngineTun, MemoryNet, ipv4Packet } from './wg-fixtures.js';

const OPTS = { mtu: 1420, slotSize: 2048 };

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000 && !cond(); i++) await nextTurn();
  assert.ok(cond(), what);
}

test('a warm-up pass carries every packet both ways through real sessions, and drops none', () => {
  // 50 round trips: 48 of one packet each way, and every 25th a batch of 32 each way
  const w = DataPathWarmUp.runNow({ ...OPTS, roundTrips: 50 });
  assert.equal(w.finished, true);
  assert.equal(w.roundTrips, 50);
  assert.equal(w.delivered, 48 * 2 + 2 * 32 * 2);
  assert.equal(w.dropped, 0);
});

test('a warm-up pass runs in slices on the event loop and stop() ends it', async () => {
  const w = DataPathWarmUp.start({ ...OPTS, roundTrips: 400 });
  assert.equal(w.roundTrips, 0, 'nothing runs before the next turn of the event loop');
  await until(() => w.roundTrips > 0, 'the first slice ran');
  assert.ok(w.roundTrips < 400, 'one slice is not the whole pass');
  w.stop();
  const at = w.roundTrips;
  await nextTurn();
  await nextTurn();
  assert.equal(w.roundTrips, at);
  assert.equal(w.finished, true);
});

test('WarmUpPlan runs a pass only after real packets went both ways since the last one', async () => {
  const plan = new WarmUpPlan({ ...OPTS, roundTrips: 60 }, 2);
  plan.afterBatch(0, 5);
  plan.afterBatch(5, 0);
  assert.deepEqual(plan.progress, { passes: 0, running: false }, 'one direction only: no pass');
  plan.afterBatch(1, 1);
  assert.deepEqual(plan.progress, { passes: 1, running: true });
  await until(() => !plan.progress.running, 'pass 1 ended');
  plan.afterBatch(1, 1); // the first batch after the pass only marks where real traffic stood
  plan.afterBatch(2, 1);
  assert.equal(plan.progress.passes, 1, 'not both ways since the pass ended');
  plan.afterBatch(2, 2);
  assert.deepEqual(plan.progress, { passes: 2, running: true });
  await until(() => !plan.progress.running, 'pass 2 ended');
  assert.equal(plan.pending, false, 'two passes and no more');
  plan.afterBatch(9, 9);
  assert.equal(plan.progress.passes, 2);
});

test('the engine warms up after its first real traffic, unless turned off', async () => {
  const key = () => {
    const priv = clampPrivateKey(randomBytes(32));
    return { priv, pub: publicKeyOf(privateKeyObject(priv)) };
  };
  for (const warmUp of [undefined, false] as const) {
    const net = new MemoryNet();
    const ka = key();
    const kb = key();
    const tunA = new MemoryEngineTun();
    const tunB = new MemoryEngineTun();
    const a = new Engine({ tun: tunA, bind: net.bind('192.0.2.1:51820'), privateKey: ka.priv, ...(warmUp === false ? { warmUp } : {}), env: {} }).start();
    const b = new Engine({ tun: tunB, bind: net.bind('192.0.2.2:51820'), privateKey: kb.priv, env: { MESHD_WARM_UP: '0' } }).start();
    a.addPeer({ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: '192.0.2.2:51820' });
    b.addPeer({ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'], endpoint: '192.0.2.1:51820' });
    assert.equal(b.warmUpProgress, null, 'MESHD_WARM_UP=0 turns it off');
    if (warmUp === false) assert.equal(a.warmUpProgress, null);
    else assert.deepEqual(a.warmUpProgress, { passes: 0, running: false }, 'no pass before real traffic');
    tunA.inject([ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(40))]);
    net.pump();
    tunB.inject([ipv4Packet('10.0.0.2', '10.0.0.1', new Uint8Array(40))]);
    net.pump();
    assert.equal(tunA.written.length, 1, 'the reply arrived');
    if (warmUp === undefined) {
      assert.equal(a.warmUpProgress?.passes, 1, 'traffic both ways starts the first pass');
      await until(() => a.warmUpProgress?.running === false, 'the pass ended');
    }
    assert.equal(a.stats().drops['decrypt-failed'], 0);
    await a.stop();
    await b.stop();
  }
});

/**
 * The daemon's heap trim: the addon's mallocTrim gives freed C-heap memory back to the kernel
 * (measured in this process's own RssAnon), and HeapTrimmer runs it once per quiet moment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNative } from '../../src/engine/native/load.js';
import { defaultTrimFunctions, HeapTrimmer } from '../../src/daemon/heap-trim.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const anonMiB = (): number => Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

test('mallocTrim returns freed C-heap memory that free() kept resident', async (t) => {
  if (!requirePrereqs(t, ['native'])) return;
  const addon = loadNative()!;
  assert.equal(typeof addon.mallocTrim, 'function', 'the addon has mallocTrim (rebuild it: npm run build:native)');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // 64 MiB of 8 KiB buffers (each its own malloc chunk), touched; the last one stays alive so
  // the heap's top cannot shrink by itself: free() keeps the rest resident
  const last = (() => {
    const bufs: Buffer[] = [];
    for (let i = 0; i < 8192; i++) bufs.push(Buffer.allocUnsafeSlow(8192).fill(1));
    return bufs[bufs.length - 1]!;
  })();
  gc();
  await sleep(100);
  gc();
  const before = anonMiB();
  assert.equal(addon.mallocTrim!(), true);
  const after = anonMiB();
  assert.ok(before - after > 32, `trim released ${(before - after).toFixed(1)} MiB of the 64 MiB freed (RssAnon ${before.toFixed(1)} → ${after.toFixed(1)} MiB)`);
  assert.equal(last.length, 8192);
});

test('HeapTrimmer: one trim (a full GC, then malloc_trim) per quiet moment, at least minInterval apart; none after stop', async () => {
  const calls: string[] = [];
  const tr = new HeapTrimmer({ gc: () => void calls.push('gc'), mallocTrim: () => (calls.push('trim'), calls.length === 2) }, 30, 300);
  assert.equal(tr.available, true);
  for (let i = 0; i < 5; i++) {
    tr.soon();
    await sleep(5);
  }
  assert.deepEqual(calls, [], 'requests within the delay move the trim later');
  for (let i = 0; i < 100 && tr.runs === 0; i++) await sleep(20);
  assert.deepEqual(calls, ['gc', 'trim']);
  assert.deepEqual([tr.runs, tr.released], [1, 1]);
  tr.now();
  const ranAt = Date.now();
  tr.soon();
  await sleep(100);
  assert.equal(tr.runs, 2, 'the next trim waits for minInterval');
  for (let i = 0; i < 250 && tr.runs === 2; i++) await sleep(20);
  assert.deepEqual([tr.runs, tr.released], [3, 1]);
  assert.ok(Date.now() - ranAt >= 290, 'not before minInterval');
  tr.soon();
  tr.stop();
  await sleep(400);
  assert.equal(tr.runs, 3, 'stop cancels a pending trim');
  tr.now();
  assert.equal(tr.runs, 3, 'a stopped trimmer does nothing');
  const none = new HeapTrimmer({ gc: null, mallocTrim: null }, 10);
  assert.equal(none.available, false);
  none.soon();
  none.now();
  assert.equal(none.runs, 0);
});

test('HeapTrimmer.watch: trims once the resident set has grown by growthBytes since the last trim', async () => {
  let rss = 100;
  const tr = new HeapTrimmer({ gc: () => undefined, mallocTrim: () => ((rss = 100), true) }, 10, 0, () => rss);
  tr.watch(20, 50);
  await sleep(100);
  assert.equal(tr.runs, 0, 'no growth, no trim');
  rss = 140;
  await sleep(100);
  assert.equal(tr.runs, 0, 'growth below the threshold');
  rss = 160;
  for (let i = 0; i < 100 && tr.runs === 0; i++) await sleep(20);
  assert.equal(tr.runs, 1);
  await sleep(100);
  assert.equal(tr.runs, 1, 'measured again after the trim: back to 100');
  tr.stop();
  rss = 500;
  await sleep(100);
  assert.equal(tr.runs, 1, 'stopped');
});

test('the default trim functions: a full GC that frees what nothing holds; mallocTrim with the addon', (t) => {
  const fns = defaultTrimFunctions();
  assert.ok(fns.gc, 'a gc function');
  let ref: WeakRef<object> | undefined = (() => new WeakRef({ big: new Array(1000).fill(1) }))();
  // a WeakRef's target survives until the end of the current job: collect in a later one
  return new Promise<void>((resolve) => setImmediate(() => {
    fns.gc!();
    assert.equal(ref!.deref(), undefined, 'the full GC collected an unreachable object');
    ref = undefined;
    if (requirePrereqs(t, ['native'])) assert.equal(typeof fns.mallocTrim, 'function');
    resolve();
  }));
});

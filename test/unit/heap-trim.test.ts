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
import { HeapTrimmer } from '../../src/daemon/heap-trim.js';
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

test('HeapTrimmer: one trim per quiet moment, none after stop, nothing without a trim function', async () => {
  let calls = 0;
  const tr = new HeapTrimmer(() => (++calls, calls === 1), 30);
  assert.equal(tr.available, true);
  for (let i = 0; i < 5; i++) {
    tr.soon();
    await sleep(5);
  }
  assert.equal(calls, 0, 'requests within the delay move the trim later');
  await sleep(80);
  assert.equal(calls, 1);
  assert.deepEqual([tr.runs, tr.released], [1, 1]);
  tr.soon();
  await sleep(80);
  assert.deepEqual([calls, tr.runs, tr.released], [2, 2, 1]);
  tr.soon();
  tr.stop();
  await sleep(80);
  assert.equal(calls, 2, 'stop cancels a pending trim');
  tr.soon();
  tr.now();
  assert.equal(calls, 2, 'a stopped trimmer does nothing');
  const none = new HeapTrimmer(null, 10);
  assert.equal(none.available, false);
  none.soon();
  none.now();
  assert.equal(none.runs, 0);
});

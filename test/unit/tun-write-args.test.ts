/**
 * fdWrite and tunWriteVnet take the same seven arguments and check them in one place
 * (meshd_parse_write_args): the same bad calls are refused by both, with the function's name in
 * the message, and good ones write every packet. The fd is /dev/null, so no TUN is needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { loadNative } from '../../src/engine/native/load.js';
import { PacketBatch } from '../../src/engine/packet-batch.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const addon = loadNative();

test('fdWrite and tunWriteVnet refuse the same bad arguments and write the same good batch', (t) => {
  if (!requirePrereqs(t, ['native'])) return;
  assert.ok(addon?.tunWriteVnet, 'the addon has tunWriteVnet (rebuild it)');
  const fd = openSync('/dev/null', 'w');
  t.after(() => closeSync(fd));
  const b = new PacketBatch(4, 256);
  for (let i = 0; i < 3; i++) {
    const p = new Uint8Array(40 + i);
    p[0] = 0x45; // an IPv4 header that no TCP segment follows: written as it is
    p[3] = p.length;
    p[9] = 17;
    b.push(p, 16);
  }
  const calls = {
    fdWrite: (...a: Parameters<typeof addon.fdWrite>) => addon!.fdWrite(...a),
    tunWriteVnet: (...a: Parameters<typeof addon.fdWrite>) => addon!.tunWriteVnet!(...a),
  };
  for (const [name, call] of Object.entries(calls)) {
    const result = new Int32Array(8);
    assert.equal(call(fd, b.buf, b.offsets, b.lengths, 0, 3, result), 3, `${name}: the whole batch written`);
    assert.deepEqual([...result.subarray(0, 4)], [3, 0, 0, 0], name);
    assert.equal(call(fd, b.buf, b.offsets, b.lengths, 1, 2, result), 2, `${name}: a sub-range`);

    const refused: Array<[unknown[], RegExp]> = [
      [[-1, b.buf, b.offsets, b.lengths, 0, 1, result], /fd/],
      [[fd, 'text', b.offsets, b.lengths, 0, 1, result], /buf/],
      [[fd, b.buf, new Int32Array(4), b.lengths, 0, 1, result], /offsets/],
      [[fd, b.buf, b.offsets, [1, 2], 0, 1, result], /lengths/],
      [[fd, b.buf, b.offsets, b.lengths, 3, 2, result], new RegExp(`${name}: start/count outside the batch`)],
      [[fd, b.buf, b.offsets, b.lengths, 0, 1, new Int32Array(2)], new RegExp(`${name}: start/count outside the batch`)],
      [[fd, b.buf.subarray(0, 100), b.offsets, b.lengths, 0, 3, result], new RegExp(`${name}: a packet lies outside the buffer`)],
    ];
    for (const [args, message] of refused) {
      assert.throws(() => (call as (...x: unknown[]) => number)(...args), message, `${name}(${args.map((a) => typeof a).join(', ')})`);
    }
  }
  // tunWriteVnet's result is Int32Array(8); four slots are enough only for fdWrite
  assert.equal(addon.fdWrite(fd, b.buf, b.offsets, b.lengths, 0, 1, new Int32Array(4)), 1);
  assert.throws(() => addon.tunWriteVnet!(fd, b.buf, b.offsets, b.lengths, 0, 1, new Int32Array(4)), /tunWriteVnet: start\/count outside the batch/);
});

/** classifyDatagram: one rule for the UDP socket and the relay; the formats never collide. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classifyDatagram, isWireGuardAt } from '../../src/engine/magicsock/classify.js';
import { DISCO_MAGIC, DISCO_MIN_PACKET_LEN } from '../../src/engine/magicsock/disco.js';
import { encodeBindingRequest } from '../../src/engine/magicsock/stun.js';

const wg = (type: number, len = 148): Uint8Array => {
  const b = new Uint8Array(len);
  b[0] = type;
  return b;
};

test('each format is recognised, at an offset inside a batch buffer too', () => {
  for (const t of [1, 2, 3, 4]) assert.equal(classifyDatagram(wg(t)), 'wireguard');
  const disco = new Uint8Array(DISCO_MIN_PACKET_LEN);
  disco.set(DISCO_MAGIC, 0);
  assert.equal(classifyDatagram(disco), 'disco');
  const stun = new Uint8Array(encodeBindingRequest());
  assert.equal(classifyDatagram(stun), 'stun');
  // three datagrams back to back, as in a recvmmsg batch
  const batch = new Uint8Array(148 + disco.length + stun.length);
  batch.set(wg(4), 0);
  batch.set(disco, 148);
  batch.set(stun, 148 + disco.length);
  assert.equal(classifyDatagram(batch, 0, 148), 'wireguard');
  assert.equal(classifyDatagram(batch, 148, disco.length), 'disco');
  assert.equal(classifyDatagram(batch, 148 + disco.length, stun.length), 'stun');
});

test('near misses are unknown: type 0 or 5, a non-zero reserved byte, too short, empty', () => {
  assert.equal(classifyDatagram(wg(0)), 'unknown');
  assert.equal(classifyDatagram(wg(5)), 'unknown');
  const reserved = wg(1);
  reserved[2] = 1;
  assert.equal(classifyDatagram(reserved), 'unknown');
  assert.equal(classifyDatagram(new Uint8Array([1, 0, 0])), 'unknown');
  assert.equal(classifyDatagram(new Uint8Array(0)), 'unknown');
  assert.equal(isWireGuardAt(new Uint8Array(0), 0, 0), false);
  const shortDisco = new Uint8Array(DISCO_MIN_PACKET_LEN - 1);
  shortDisco.set(DISCO_MAGIC, 0);
  assert.equal(classifyDatagram(shortDisco), 'unknown');
});

test('any bytes: never throws, one kind only, the same at an offset as alone', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), fc.uint8Array({ maxLength: 16 }), (pkt, prefix) => {
      const kind = classifyDatagram(pkt);
      const joined = new Uint8Array(prefix.length + pkt.length);
      joined.set(prefix, 0);
      joined.set(pkt, prefix.length);
      assert.equal(classifyDatagram(joined, prefix.length, pkt.length), kind);
      if (kind === 'wireguard') assert.ok(pkt[0]! >= 1 && pkt[0]! <= 4);
    }),
    { numRuns: 2000 },
  );
});

/** Collecting what a batch UDP socket receives, for the UDP unit tests. */
import assert from 'node:assert/strict';
import { PacketBatch, readAddr } from '../../src/engine/packet-batch.js';
import type { BatchUdpSocket } from '../../src/engine/udp/batch-udp-socket.js';

export interface Received {
  data: Buffer;
  ip: string;
  port: number;
}

/** Receive until `n` datagrams arrived (or fail after timeoutMs). */
export function collect(sock: BatchUdpSocket, n: number, batch = new PacketBatch(64), timeoutMs = 5000): Promise<Received[]> {
  return new Promise((resolve, reject) => {
    const got: Received[] = [];
    const timer = setTimeout(() => {
      sock.stopReceiving();
      reject(new Error(`timed out with ${got.length}/${n} datagrams (stats ${JSON.stringify(sock.stats)})`));
    }, timeoutMs);
    sock.startReceiving(batch, (b) => {
      assert.ok(b.count > 0 && b.count <= b.capacity);
      for (let i = 0; i < b.count; i++) {
        assert.equal(b.offsets[i], b.slotStart(i), 'datagrams land at slot start');
        const { ip, port } = readAddr(b.addrs, i);
        got.push({ data: Buffer.from(b.packet(i)), ip, port });
      }
      if (got.length >= n) {
        clearTimeout(timer);
        sock.stopReceiving();
        resolve(got);
      }
    });
  });
}

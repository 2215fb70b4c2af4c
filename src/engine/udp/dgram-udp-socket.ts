/**
 * BatchUdpSocket over node:dgram, for when the addon is unavailable (or MESHD_PURE_TS=1). Same
 * contract, slower: dgram delivers one 'message' event per datagram, which is queued (bounded)
 * and handed out in batches once per event-loop turn; sends copy each packet because dgram may
 * send after the call returns, when the caller has reused the batch.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { MeshdError } from '../../errors.js';
import { drainBatches } from '../native/readiness.js';
import { readAddr, writeAddr, type PacketBatch } from '../packet-batch.js';
import { emptyUdpStats, type BatchUdpSocket, type ResolvedUdpOptions, type UdpOffload, type UdpStats } from './udp-socket.js';

/** Datagrams held between 'message' events and receiveBatch; beyond this they are dropped. */
export const DGRAM_QUEUE_LIMIT = 4096;
/** Sends waiting inside dgram beyond which new ones are dropped, like a full kernel queue. */
export const DGRAM_SEND_QUEUE_LIMIT = 4096;

interface Queued {
  data: Buffer;
  ip: string;
  port: number;
}

export class DgramUdpSocket implements BatchUdpSocket {
  readonly kind = 'dgram' as const;
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
  /** node:dgram cannot set SO_MARK. */
  readonly mark = 0;
  readonly stats: UdpStats = emptyUdpStats();
  readonly offload: UdpOffload = { gso: false, gro: false };
  readonly #socket: Socket;
  #queue: Queued[] = [];
  #head = 0;
  #closed = false;
  #receiving: { batch: PacketBatch; onBatch: (batch: PacketBatch) => void } | null = null;
  #scheduled: NodeJS.Immediate | null = null;
  #keepAlive = true;
  readonly #onSent = (err: Error | null): void => {
    if (err) {
      this.stats.txErrors++;
      this.stats.txPackets--;
      this.stats.lastError = (err as NodeJS.ErrnoException).code ?? err.message;
    }
  };

  private constructor(socket: Socket, family: 4 | 6) {
    this.#socket = socket;
    this.family = family;
    const a = socket.address();
    this.address = a.address;
    this.port = a.port;
    // Like the native socket, only a receiving socket keeps the process alive.
    socket.unref();
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.stats.rxErrors++;
      this.stats.lastError = err.code ?? err.message;
    });
  }

  static open(o: ResolvedUdpOptions): Promise<DgramUdpSocket> {
    const v4 = isIPv4(o.address);
    const socket = createSocket({
      type: v4 ? 'udp4' : 'udp6',
      ipv6Only: false,
      recvBufferSize: o.recvBufferSize || undefined,
      sendBufferSize: o.sendBufferSize || undefined,
    });
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.close();
        reject(new MeshdError('E_ENGINE', `cannot bind UDP ${o.address} port ${o.port}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.bind({ address: o.address, port: o.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve(new DgramUdpSocket(socket, v4 ? 4 : 6));
      });
    });
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.#queue.length - this.#head >= DGRAM_QUEUE_LIMIT) {
      this.stats.rxDropped++;
      return;
    }
    this.#queue.push({ data: msg, ip: rinfo.address, port: rinfo.port });
    this.#schedule();
  }

  /** Hand queued datagrams to the receiver once per event-loop turn (level-triggered, like uv_poll). */
  #schedule(): void {
    if (this.#receiving === null || this.#scheduled !== null || this.#head >= this.#queue.length) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = null;
      const r = this.#receiving;
      if (r === null || this.#closed) return;
      drainBatches((b) => this.receiveBatch(b), r.batch, r.onBatch);
      this.#schedule();
    });
    if (!this.#keepAlive) this.#scheduled.unref();
  }

  receiveBatch(batch: PacketBatch): number {
    if (this.#closed) throw new MeshdError('E_ENGINE', 'UDP socket is closed');
    const q = this.#queue;
    let n = 0;
    while (n < batch.capacity && this.#head < q.length) {
      const d = q[this.#head]!;
      q[this.#head++] = undefined as unknown as Queued;
      if (d.data.length > batch.slotSize) {
        this.stats.rxTruncated++;
        continue;
      }
      const off = n * batch.slotSize;
      batch.buf.set(d.data, off);
      batch.offsets[n] = off;
      batch.lengths[n] = d.data.length;
      writeAddr(batch.addrs, n, d.ip, d.port);
      n++;
    }
    if (this.#head >= q.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
    batch.count = n;
    this.stats.rxPackets += n;
    return n;
  }

  sendBatch(batch: PacketBatch, start = 0, count = batch.count - start): number {
    if (this.#closed) throw new MeshdError('E_ENGINE', 'UDP socket is closed');
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || start + count > batch.capacity) {
      throw new RangeError('start/count outside the batch');
    }
    let sent = 0;
    for (let i = start; i < start + count; i++) {
      if (this.#socket.getSendQueueCount() >= DGRAM_SEND_QUEUE_LIMIT) {
        this.stats.txDropped += start + count - i;
        break;
      }
      const dest = readAddr(batch.addrs, i);
      let ip = dest.ip;
      const port = dest.port;
      const v4 = !ip.includes(':');
      if (this.family === 4 && !v4) {
        this.stats.txErrors++;
        this.stats.lastError = 'EAFNOSUPPORT';
        continue;
      }
      if (this.family === 6 && v4) ip = `::ffff:${ip}`;
      const off = batch.offsets[i]!;
      const copy = Buffer.from(batch.buf.subarray(off, off + batch.lengths[i]!));
      this.#socket.send(copy, port, ip, this.#onSent);
      this.stats.txPackets++;
      this.stats.txMessages++;
      sent++;
    }
    return sent;
  }

  startReceiving(batch: PacketBatch, onBatch: (batch: PacketBatch) => void): void {
    if (this.#closed) throw new MeshdError('E_ENGINE', 'UDP socket is closed');
    this.#receiving = { batch, onBatch };
    if (this.#keepAlive) this.#socket.ref();
    else this.#socket.unref();
    this.#schedule();
  }

  stopReceiving(): void {
    this.#receiving = null;
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    if (!this.#closed) this.#socket.unref();
  }

  setKeepAlive(keep: boolean): void {
    this.#keepAlive = keep;
    if (this.#receiving === null || this.#closed) return;
    if (keep) this.#socket.ref();
    else this.#socket.unref();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.stopReceiving();
    this.#queue = [];
    this.#head = 0;
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

/**
 * BatchUdpSocket over the addon: a non-blocking socket, recvmmsg/sendmmsg for whole batches,
 * and a uv_poll readiness watcher that drains the socket batch by batch.
 *
 * With offload (the default unless MESHD_NO_OFFLOAD=1, where the addon and kernel have it):
 * UDP_SEGMENT sends runs of same-size datagrams to one address as one message, and UDP_GRO
 * receives runs of one sender's datagrams as one buffer that the addon cuts back into slots
 * (keeping in a per-socket scratch area what does not fit the batch). A kernel that refuses
 * segmentation (EIO: no checksum offload on the route's device) turns GSO off for the socket.
 */
import { MeshdError } from '../../errors.js';
import { errnoName, nativeErrorCode, type NativeAddon } from '../native/addon.js';
import { countBatchWrite, FdBatchReader } from '../native/readiness.js';
import { ADDR_SIZE, readAddr, writeAddr, type PacketBatch } from '../packet-batch.js';
import { emptyUdpStats, type BatchUdpSocket, type ResolvedUdpOptions, type UdpOffload, type UdpStats } from './udp-socket.js';

export class NativeUdpSocket implements BatchUdpSocket {
  readonly kind = 'native' as const;
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
  readonly mark: number;
  readonly stats: UdpStats = emptyUdpStats();
  readonly offload: UdpOffload;
  readonly #addon: NativeAddon;
  #fd: number;
  readonly #reader: FdBatchReader;
  /** Per-call results from the addon, reused: [n, a, b, lastErrno, …offload counters]. */
  readonly #result = new Int32Array(8);
  /** udpRecvGro's carry-over area (GRO only). */
  readonly #groScratch: Uint8Array | null;
  #held = false;

  private constructor(addon: NativeAddon, fd: number, family: 4 | 6, address: string, port: number, mark: number, offload: UdpOffload) {
    this.#addon = addon;
    this.offload = offload;
    this.#groScratch = offload.gro ? new Uint8Array(addon.udpGroScratchSize!()) : null;
    this.#fd = fd;
    this.#reader = new FdBatchReader(addon, this.stats);
    this.family = family;
    this.address = address;
    this.port = port;
    this.mark = mark;
  }

  static async open(addon: NativeAddon, o: ResolvedUdpOptions): Promise<NativeUdpSocket> {
    const slot = new Uint8Array(ADDR_SIZE);
    writeAddr(slot, 0, o.address, o.port);
    let opened: { fd: number; family: 4 | 6 };
    try {
      opened = addon.udpOpen(slot, o.recvBufferSize, o.sendBufferSize);
    } catch (e) {
      throw new MeshdError('E_ENGINE', `cannot bind UDP ${o.address} port ${o.port}: ${(e as Error).message}`, {
        cause: e,
        hint: nativeErrorCode(e) === 'EADDRINUSE' ? 'another process uses that port' : undefined,
      });
    }
    try {
      const port = addon.udpLocalAddress(opened.fd, slot);
      let mark = 0;
      if (o.mark !== 0 && addon.udpSetMark) {
        try {
          addon.udpSetMark(opened.fd, o.mark);
          mark = o.mark;
        } catch {
          // no CAP_NET_ADMIN: the socket works unmarked (mark 0 says so)
        }
      }
      return new NativeUdpSocket(addon, opened.fd, opened.family, readAddr(slot, 0).ip, port, mark, enableOffload(addon, opened.fd, o.offload));
    } catch (e) {
      addon.fdClose(opened.fd);
      throw new MeshdError('E_ENGINE', `cannot read the bound UDP address: ${(e as Error).message}`, { cause: e });
    }
  }

  #checkOpen(): number {
    if (this.#fd < 0) throw new MeshdError('E_ENGINE', 'UDP socket is closed');
    return this.#fd;
  }

  receiveBatch(batch: PacketBatch): number {
    const fd = this.#checkOpen();
    const r = this.#result;
    const scratch = this.#groScratch;
    let n: number;
    if (scratch !== null) {
      n = this.#addon.udpRecvGro!(fd, batch.buf, batch.slotSize, batch.offsets, batch.lengths, batch.addrs, batch.capacity, r, scratch);
      this.stats.rxCoalesced += r[4]!;
      this.#held = r[5] !== 0;
    } else {
      n = this.#addon.udpRecv(fd, batch.buf, batch.slotSize, batch.offsets, batch.lengths, batch.addrs, batch.capacity, r);
    }
    batch.count = n;
    this.stats.rxPackets += n;
    if (r[1] !== 0) this.stats.rxTruncated += r[1]!;
    if (r[2] !== 0) {
      this.stats.rxErrors += r[2]!;
      this.stats.lastError = errnoName(r[3]!);
    }
    return n;
  }

  sendBatch(batch: PacketBatch, start = 0, count = batch.count - start): number {
    const fd = this.#checkOpen();
    if (count <= 0) return 0;
    const r = this.#result;
    if (this.offload.gso) {
      const sent = this.#addon.udpSendGso!(fd, this.family, batch.buf, batch.offsets, batch.lengths, batch.addrs, start, count, r);
      countBatchWrite(this.stats, sent, r);
      this.stats.txMessages += r[4]!;
      this.stats.txSegmented += r[5]!;
      this.stats.txSegmentRefused += r[6]!;
      if (r[7] !== 0) this.offload.gso = false; // EIO: the route's device cannot segment; stop asking
      return sent;
    }
    const sent = this.#addon.udpSend(fd, this.family, batch.buf, batch.offsets, batch.lengths, batch.addrs, start, count, r);
    countBatchWrite(this.stats, sent, r);
    this.stats.txMessages += sent;
    return sent;
  }

  startReceiving(batch: PacketBatch, onBatch: (batch: PacketBatch) => void): void {
    const fd = this.#checkOpen();
    this.#reader.start(fd, (b) => this.receiveBatch(b), () => this.#fd >= 0, batch, onBatch, () => this.#held);
  }

  stopReceiving(): void {
    this.#reader.stop();
  }

  setKeepAlive(keep: boolean): void {
    this.#reader.setKeepAlive(keep);
  }

  async close(): Promise<void> {
    if (this.#fd < 0) return;
    this.stopReceiving();
    const fd = this.#fd;
    this.#fd = -1;
    this.#addon.fdClose(fd);
  }
}

/** Turn on what the addon and kernel offer of UDP GSO/GRO, when wanted. */
function enableOffload(addon: NativeAddon, fd: number, wanted: boolean): UdpOffload {
  if (!wanted || !addon.udpOffload || !addon.udpSendGso || !addon.udpRecvGro || !addon.udpGroScratchSize) return { gso: false, gro: false };
  try {
    return addon.udpOffload(fd, true, true);
  } catch {
    return { gso: false, gro: false };
  }
}

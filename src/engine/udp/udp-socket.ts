/**
 * The contract every UDP socket of the data plane meets: whole batches in and out, never a
 * callback or an allocation per datagram on the native path. Implemented by NativeUdpSocket and
 * DgramUdpSocket; opened through openBatchUdpSocket (batch-udp-socket.ts).
 *
 * Batch conventions (see PacketBatch): a received datagram i lands at slot start i*slotSize
 * with its source in batch.addrs slot i; a datagram longer than a slot is dropped and counted.
 * sendBatch sends packet i (offsets[i], lengths[i]) to batch.addrs slot i. Sends never block:
 * when the kernel queue is full the rest of the batch is dropped and counted, like a full queue.
 */
import type { PacketBatch } from '../packet-batch.js';

export type UdpImplementation = 'native' | 'dgram';

export interface BatchUdpSocket {
  readonly kind: UdpImplementation;
  /** 4 for a socket bound to an IPv4 address, 6 for an IPv6 one (dual-stack: it carries IPv4 too). */
  readonly family: 4 | 6;
  /** The bound address and port (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  /** The SO_MARK the socket carries (0: none; node:dgram sockets cannot carry one). */
  readonly mark: number;
  readonly stats: UdpStats;
  /** The segmentation offloads in use (MESHD_NO_OFFLOAD=1, node:dgram or an old kernel: none). */
  readonly offload: UdpOffload;
  /**
   * Receive up to batch.capacity waiting datagrams into slots 0..n-1; sets batch.count and
   * returns n (0 when nothing is waiting). Never blocks.
   */
  receiveBatch(batch: PacketBatch): number;
  /**
   * Send packets start..start+count-1 (default all of batch.count), packet i to batch.addrs slot i.
   * Returns how many were handed to the kernel; drops and errors go to stats.
   */
  sendBatch(batch: PacketBatch, start?: number, count?: number): number;
  /**
   * Each time datagrams are waiting, drain them into `batch` and call onBatch for every non-empty
   * batch. onBatch must be done with the batch when it returns: the batch is reused.
   */
  startReceiving(batch: PacketBatch, onBatch: (batch: PacketBatch) => void): void;
  stopReceiving(): void;
  /** Whether a receiving socket keeps the process alive (default true). */
  setKeepAlive(keep: boolean): void;
  close(): Promise<void>;
}

/** Counters shared by both implementations. */
export interface UdpStats {
  rxPackets: number;
  /** Datagrams longer than a batch slot, dropped. */
  rxTruncated: number;
  /** Datagrams dropped because the fallback's queue was full (dgram only). */
  rxDropped: number;
  rxErrors: number;
  txPackets: number;
  /** Packets dropped because the send queue was full. */
  txDropped: number;
  /** Packets the kernel refused (unreachable, wrong family, …). */
  txErrors: number;
  /** Code of the last error seen ('ENETUNREACH', …), or null. */
  lastError: string | null;
  /** Send messages handed to the kernel (with UDP GSO one carries several datagrams; else = txPackets). */
  txMessages: number;
  /** Of those, messages that carried two or more datagrams (UDP_SEGMENT). */
  txSegmented: number;
  /** Segmented messages the kernel refused (their datagrams then went one by one). */
  txSegmentRefused: number;
  /** Received buffers that held two or more datagrams (UDP_GRO), cut into slots. */
  rxCoalesced: number;
}

/** Which UDP segmentation offloads a socket uses (both false: one datagram per message). */
export interface UdpOffload {
  /** UDP_SEGMENT on send; turned off by itself when the kernel refuses it (EIO). */
  gso: boolean;
  /** UDP_GRO on receive. */
  gro: boolean;
}

export function emptyUdpStats(): UdpStats {
  return {
    rxPackets: 0,
    rxTruncated: 0,
    rxDropped: 0,
    rxErrors: 0,
    txPackets: 0,
    txDropped: 0,
    txErrors: 0,
    lastError: null,
    txMessages: 0,
    txSegmented: 0,
    txSegmentRefused: 0,
    rxCoalesced: 0,
  };
}

export interface ResolvedUdpOptions {
  address: string;
  port: number;
  recvBufferSize: number;
  sendBufferSize: number;
  /** SO_MARK to set (0: none); a socket that cannot carry it still opens, with mark 0. */
  mark: number;
  /** Use UDP GSO/GRO where the addon and kernel have them (false under MESHD_NO_OFFLOAD=1). */
  offload: boolean;
}

/**
 * The contract every UDP socket of the data plane meets: whole batches in and out, never a
 * callback or an allocation per datagram on the native path. Two implementations: the addon
 * (recvmmsg/sendmmsg on a non-blocking socket with a uv_poll readiness watcher) and a fallback
 * over node:dgram for when the addon is unavailable or MESHD_PURE_TS=1.
 *
 * Batch conventions (see PacketBatch): a received datagram i lands at slot start i*slotSize
 * with its source in batch.addrs slot i; a datagram longer than a slot is dropped and counted.
 * sendBatch sends packet i (offsets[i], lengths[i]) to batch.addrs slot i. Sends never block:
 * when the kernel queue is full the rest of the batch is dropped and counted, like a full queue.
 */
import { isIP } from 'node:net';
import { MeshdError } from '../../errors.js';
import { chooseNative, type ImplementationChoice } from '../native/load.js';
import type { PacketBatch } from '../packet-batch.js';
import { DgramUdpSocket } from './dgram-udp-socket.js';
import { NativeUdpSocket } from './native-udp-socket.js';
import type { ResolvedUdpOptions, UdpStats } from './udp-stats.js';

export { emptyUdpStats, type ResolvedUdpOptions, type UdpStats } from './udp-stats.js';

export type UdpImplementation = 'native' | 'dgram';

export interface BatchUdpSocket {
  readonly kind: UdpImplementation;
  /** 4 for a socket bound to an IPv4 address, 6 for an IPv6 one (dual-stack: it carries IPv4 too). */
  readonly family: 4 | 6;
  /** The bound address and port (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  readonly stats: UdpStats;
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

export interface BatchUdpOptions extends ImplementationChoice<'dgram'> {
  /** Address to bind: default '::' (all addresses, IPv4 and IPv6). */
  address?: string;
  /** Port to bind; 0 (default) picks an ephemeral one. */
  port?: number;
  /** Kernel buffer sizes in bytes (default 4 MiB each; as root they may exceed the sysctl limits). */
  recvBufferSize?: number;
  sendBufferSize?: number;
}

export const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

function resolveOptions(o: BatchUdpOptions): ResolvedUdpOptions {
  const address = o.address ?? '::';
  const port = o.port ?? 0;
  if (isIP(address.split('%')[0]!) === 0) throw new MeshdError('E_ENGINE', `not an IP address: ${JSON.stringify(address)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MeshdError('E_ENGINE', `bad UDP port: ${port}`);
  const size = (v: number | undefined, name: string): number => {
    const n = v ?? DEFAULT_SOCKET_BUFFER;
    if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new MeshdError('E_ENGINE', `bad ${name}: ${n}`);
    return n;
  };
  return {
    address,
    port,
    recvBufferSize: size(o.recvBufferSize, 'recvBufferSize'),
    sendBufferSize: size(o.sendBufferSize, 'sendBufferSize'),
  };
}

/** Open and bind a batch UDP socket with the implementation the options and environment ask for. */
export async function openBatchUdpSocket(options: BatchUdpOptions = {}): Promise<BatchUdpSocket> {
  const resolved = resolveOptions(options);
  const addon = chooseNative(options, 'dgram', 'UDP');
  return addon === null ? DgramUdpSocket.open(resolved) : NativeUdpSocket.open(addon, resolved);
}

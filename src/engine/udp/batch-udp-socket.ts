/**
 * Opening a batch UDP socket: the options, their checks, and the choice between the two
 * implementations of the BatchUdpSocket contract (udp-socket.ts): the addon (recvmmsg/sendmmsg
 * on a non-blocking socket with a uv_poll readiness watcher) and a fallback over node:dgram for
 * when the addon is unavailable or MESHD_PURE_TS=1.
 */
import { isIP } from 'node:net';
import { MeshdError } from '../../errors.js';
import { chooseNative, offloadRequested, type ImplementationChoice } from '../native/load.js';
import { DgramUdpSocket } from './dgram-udp-socket.js';
import { NativeUdpSocket } from './native-udp-socket.js';
import type { BatchUdpSocket, ResolvedUdpOptions } from './udp-socket.js';

export { emptyUdpStats, type BatchUdpSocket, type ResolvedUdpOptions, type UdpImplementation, type UdpOffload, type UdpStats } from './udp-socket.js';

export interface BatchUdpOptions extends ImplementationChoice<'dgram'> {
  /** Address to bind: default '::' (all addresses, IPv4 and IPv6). */
  address?: string;
  /** Port to bind; 0 (default) picks an ephemeral one. */
  port?: number;
  /** Kernel buffer sizes in bytes (default 4 MiB each; as root they may exceed the sysctl limits). */
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** SO_MARK for the socket's datagrams (policy routing); 0 or absent: none. Best effort. */
  mark?: number;
  /** UDP GSO/GRO where available (native only). Default: on unless MESHD_NO_OFFLOAD=1. */
  offload?: boolean;
}

export const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

function resolveOptions(o: BatchUdpOptions): ResolvedUdpOptions {
  const address = o.address ?? '::';
  const port = o.port ?? 0;
  if (isIP(address.split('%')[0]!) === 0) throw new MeshdError('E_ENGINE', `not an IP address: ${JSON.stringify(address)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MeshdError('E_ENGINE', `bad UDP port: ${port}`);
  if (o.mark !== undefined && (!Number.isInteger(o.mark) || o.mark < 0 || o.mark > 0xffffffff)) throw new MeshdError('E_ENGINE', `bad socket mark: ${o.mark}`);
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
    mark: o.mark ?? 0,
    offload: o.offload ?? offloadRequested(o.env ?? process.env),
  };
}

/** Open and bind a batch UDP socket with the implementation the options and environment ask for. */
export async function openBatchUdpSocket(options: BatchUdpOptions = {}): Promise<BatchUdpSocket> {
  const resolved = resolveOptions(options);
  const addon = chooseNative(options, 'dgram', 'UDP');
  return addon === null ? DgramUdpSocket.open(resolved) : NativeUdpSocket.open(addon, resolved);
}

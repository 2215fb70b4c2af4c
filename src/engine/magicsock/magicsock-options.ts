/**
 * How a magic socket is opened: its options, its clock, and the UDP socket under it (the port
 * asked for, falling back to an ephemeral one; IPv6 dual-stack, falling back to IPv4).
 */
import { MeshdError } from '../../errors.js';
import { openBatchUdpSocket, type BatchUdpSocket, type UdpImplementation } from '../udp/batch-udp-socket.js';
import type { Ticker } from '../wireguard/timers.js';
import type { MagicLog } from './discovery.js';

export interface MagicClock {
  now(): number;
  every(ms: number, fn: () => void): Ticker;
}

export interface MagicSockOptions {
  /** Our WireGuard private key (X25519): the relays route to its public key. */
  privateKey: Uint8Array;
  /** Our disco private key; a fresh one per run when absent. */
  discoPrivateKey?: Uint8Array;
  /** UDP port (0 = ephemeral; when taken, falls back to ephemeral). */
  port?: number;
  /** Bind address (default '::', falling back to '0.0.0.0'). */
  address?: string;
  implementation?: 'auto' | UdpImplementation;
  /** Interfaces whose addresses are not local endpoints (the TUN). */
  excludeInterfaces?: readonly string[];
  /** Addresses that are never local endpoints (e.g. inside the mesh prefixes). */
  excludeIp?: (ip: string) => boolean;
  clock?: MagicClock;
  log?: MagicLog;
  stunTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** SO_MARK for the socket (best effort: `socket.mark` says whether it took). */
  socketMark?: number;
}

export async function openSocket(opts: MagicSockOptions): Promise<BatchUdpSocket> {
  const ports = opts.port !== undefined && opts.port !== 0 ? [opts.port, 0] : [0];
  const addresses = opts.address !== undefined ? [opts.address] : ['::', '0.0.0.0'];
  let last: unknown;
  for (const address of addresses) {
    for (const port of ports) {
      try {
        return await openBatchUdpSocket({
          address,
          port,
          ...(opts.implementation ? { implementation: opts.implementation } : {}),
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.socketMark ? { mark: opts.socketMark } : {}),
        });
      } catch (e) {
        last = e;
      }
    }
  }
  throw last instanceof MeshdError ? last : new MeshdError('E_ENGINE', `cannot open the UDP socket: ${(last as Error)?.message}`, { cause: last });
}

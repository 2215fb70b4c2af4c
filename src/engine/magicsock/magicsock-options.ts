/**
 * How a magic socket is opened: its options, and the UDP socket under it (the port
 * asked for, falling back to an ephemeral one; IPv6 dual-stack, falling back to IPv4).
 */
import { MeshdError } from '../../errors.js';
import { openBatchUdpSocket, type BatchUdpSocket, type UdpImplementation } from '../udp/batch-udp-socket.js';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';

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
  /**
   * Addresses a packet to which would enter our own tunnel (the mesh prefixes, routes into the
   * TUN): never a peer's path, whoever names them (its record, its call-me-maybe, a ping).
   */
  tunnelled?: (ip: string) => boolean;
  clock?: Clock;
  /** Events at their level: path-lost and path-changed at info, disco failures at warn. */
  log?: Logger;
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

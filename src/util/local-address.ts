/**
 * Which of this machine's addresses others can reach it at: the source address the kernel picks
 * toward a given host (a connected UDP socket: nothing is sent), or the first non-loopback IPv4
 * address of an interface that is not a meshd tunnel.
 */
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';

/** Loopback and unspecified hosts: nobody else reaches them. */
export function isLocalOnlyHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h === '::' || h === '0.0.0.0' || h === '' || /^127\./.test(h);
}

/** The first non-loopback IPv4 address not on a meshd tunnel (`tunPrefix`). */
export function firstLanAddress(tunPrefix = 'meshd'): string | undefined {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (name.startsWith(tunPrefix) || !list) continue;
    for (const a of list) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  return undefined;
}

/** The local address packets to host:port leave from; undefined without a route (or on error). */
export async function sourceAddressToward(host: string, port: number, timeoutMs = 2000): Promise<string | undefined> {
  const h = host.replace(/^\[|\]$/g, '');
  const sock = createSocket(h.includes(':') ? 'udp6' : 'udp4');
  try {
    return await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      sock.once('error', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
      sock.connect(port, h, () => {
        clearTimeout(timer);
        try {
          resolve(sock.address().address);
        } catch {
          resolve(undefined);
        }
      });
    });
  } finally {
    sock.close();
  }
}

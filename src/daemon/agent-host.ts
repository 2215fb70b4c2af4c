/** What the agent reads from the host and its environment: heartbeat and DNS settings, interface addresses, the relay's URL. */
import { networkInterfaces } from 'node:os';
import { MeshdError } from '../errors.js';
import { joinHostPort } from '../util/host-port.js';
import { firstLanAddress, isLocalOnlyHost, sourceAddressToward } from '../util/local-address.js';
import type { AgentOptions } from './agent-types.js';

/**
 * The endpoint heartbeat interval from MESHD_ENDPOINT_HEARTBEAT_MS (tests and benchmarks that
 * need heartbeats inside a short window); undefined: the control client's default.
 */
export function endpointHeartbeatMs(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.MESHD_ENDPOINT_HEARTBEAT_MS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1000 && n <= 24 * 3_600_000 ? n : undefined;
}

/** MESHD_DNS_PORT (tests run the mesh DNS server on another port, or 0 for none); default 53. */
export function dnsPortFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.MESHD_DNS_PORT;
  if (v === undefined || v === '') return 53;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : 53;
}

/** The non-loopback interface addresses except the TUN's ("eth0/192.0.2.1"). */
export function interfaceAddresses(tun: string): Set<string> {
  const out = new Set<string>();
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (name === tun || !list) continue;
    for (const a of list) if (!a.internal) out.add(`${name}/${a.address}`);
  }
  return out;
}

/**
 * The URL other nodes reach this node's relay at: --relay-url, else the address it listens on,
 * else (listening on every address) the local address that routes to the DWN — or, when this
 * machine hosts the DWN, its first LAN address. None: a clear error rather than announcing
 * 0.0.0.0, which nobody can use.
 */
export async function relayUrlFor(r: NonNullable<AgentOptions['relay']>, dwnEndpoint: string): Promise<string> {
  if (r.url) return r.url;
  const scheme = r.insecureHttp ? 'http' : 'https';
  if (!isLocalOnlyHost(r.host)) return `${scheme}://${joinHostPort(r.host, r.port)}/derp`;
  let host: string | undefined;
  try {
    const u = new URL(dwnEndpoint);
    const dwnHost = u.hostname.replace(/^\[|\]$/g, '');
    if (!isLocalOnlyHost(dwnHost)) host = await sourceAddressToward(dwnHost, Number(u.port || (u.protocol === 'https:' ? 443 : 80)));
  } catch {
    host = undefined;
  }
  if (host === undefined || isLocalOnlyHost(host)) host = firstLanAddress();
  if (host === undefined) {
    throw new MeshdError('E_RELAY', 'cannot tell at which address other machines reach the relay (this machine has no address but loopback)', {
      hint: 'give the address with --relay ADDR:PORT, or the full URL with --relay-url URL',
    });
  }
  return `${scheme}://${joinHostPort(host, r.port)}/derp`;
}

/**
 * Network conditions as seen from one UDP socket: does UDP work, what is our public address,
 * does the NAT mapping vary by destination (RFC 4787; "hard" NAT when it does), and how far is
 * each relay. The magic socket runs `runNetcheck` through its own socket every 20–26 s (so the
 * mapped addresses are the ones WireGuard uses); `meshd netcheck` runs `netcheckStandalone`
 * with a socket of its own.
 */
import { joinHostPort, splitHostPort, type HostPort } from '../../util/host-port.js';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { generateBoxKeyPair } from '../crypto/nacl-box.js';
import { RelayClient } from '../relay/client.js';
import { MeshdError } from '../../errors.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { STUN_TIMEOUT_MS } from './constants.js';
import { normalizeRelayUrl, type RelayConfig } from './relay-set.js';
import {
  classifyNatMapping,
  StunClient,
  STUN_DEFAULT_PORT,
  type NatMapping,
  type StunBindingResult,
} from './stun.js';

export interface StunTarget {
  /** An IP address. */
  readonly host: string;
  readonly port: number;
  /** The relay whose STUN port this is, if any. */
  readonly relayUrl?: string;
  /** As configured ("relay.example:3478"), for messages. */
  readonly label: string;
}

export interface StunProbe {
  /** "host:port" of the server. */
  server: string;
  relayUrl?: string;
  /** Our address as it saw us, "ip:port". */
  mapped?: string;
  rttMs?: number;
  error?: string;
}

export interface RelayLatency {
  url: string;
  /** Round trip to the relay's STUN port. */
  stunRttMs?: number;
  /** DERP ping round trip over its TCP connection. */
  latencyMs?: number;
  error?: string;
}

export interface NetcheckReport {
  /** Some STUN server answered over UDP (null: nothing was asked). */
  udp: boolean | null;
  /** Distinct mapped ip:ports, in the order found. */
  publicEndpoints: string[];
  /** Distinct public IPs. */
  publicAddresses: string[];
  mapping: NatMapping;
  /** true for endpoint-dependent mapping, false for independent, null when unknown. */
  mappingVariesByDestination: boolean | null;
  stun: StunProbe[];
  relays: RelayLatency[];
  /** Lowest-latency relay (STUN round trip, else DERP ping), null when none answered. */
  preferredRelay: string | null;
  durationMs: number;
}

/** Splits "host:port" / "[v6]:port" / "host" (default port). */
export function parseServerAddress(s: string, defaultPort: number): HostPort {
  const hp = splitHostPort(s, { defaultPort });
  if (!hp || hp.host === '') throw new MeshdError('E_CONFIG_INVALID', `bad address "${s}" (want host:port)`);
  return hp;
}

async function resolveHost(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  const r = await lookup(host);
  return r.address;
}

/**
 * The STUN servers to ask: each relay's STUN port (relay host, stunPort or 3478) and each
 * configured server. Names are resolved; unresolvable ones are reported in `errors`.
 */
export async function resolveStunTargets(
  relays: readonly RelayConfig[],
  stunServers: readonly string[],
): Promise<{ targets: StunTarget[]; errors: StunProbe[] }> {
  const targets: StunTarget[] = [];
  const errors: StunProbe[] = [];
  const jobs: Promise<void>[] = [];
  for (const r of relays) {
    let url: URL;
    try {
      url = new URL(normalizeRelayUrl(r.url));
    } catch {
      errors.push({ server: r.url, error: 'bad relay URL' });
      continue;
    }
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = r.stunPort ?? STUN_DEFAULT_PORT;
    const relayUrl = url.toString();
    jobs.push(
      resolveHost(hostname).then(
        (host) => void targets.push({ host, port, relayUrl, label: joinHostPort(hostname, port) }),
        (e: Error) => void errors.push({ server: joinHostPort(hostname, port), relayUrl, error: `cannot resolve: ${e.message}` }),
      ),
    );
  }
  for (const s of stunServers) {
    let hp: { host: string; port: number };
    try {
      hp = parseServerAddress(s, STUN_DEFAULT_PORT);
    } catch (e) {
      errors.push({ server: s, error: (e as Error).message });
      continue;
    }
    jobs.push(
      resolveHost(hp.host).then(
        (host) => void targets.push({ host, port: hp.port, label: s }),
        (e: Error) => void errors.push({ server: s, error: `cannot resolve: ${e.message}` }),
      ),
    );
  }
  await Promise.all(jobs);
  // Deterministic order: relays first (as configured), then servers.
  const order = (t: StunTarget): number => {
    if (t.relayUrl !== undefined) return relays.findIndex((r) => normalizeRelayUrl(r.url) === t.relayUrl);
    return relays.length + stunServers.indexOf(t.label);
  };
  targets.sort((a, b) => order(a) - order(b));
  return { targets, errors };
}

export interface NetcheckOptions {
  /** A STUN client whose datagrams leave from the socket being checked. */
  stun: StunClient;
  targets: readonly StunTarget[];
  /** Probe results to include as they are (e.g. unresolvable names). */
  errors?: readonly StunProbe[];
  /** Relays to report on (their STUN round trips come from the targets). */
  relays?: readonly RelayConfig[];
  /** DERP ping round trip to a relay, when the caller can measure it. */
  relayLatency?: (url: string) => Promise<number | null>;
  timeoutMs?: number;
  clock?: Clock;
}

/** One round: a Binding request to every target at once, then the verdicts. */
export async function runNetcheck(opts: NetcheckOptions): Promise<NetcheckReport> {
  const clock = opts.clock ?? systemClock;
  const started = clock.now();
  const timeoutMs = opts.timeoutMs ?? STUN_TIMEOUT_MS;
  const results: StunBindingResult[] = [];
  const probes: StunProbe[] = await Promise.all(
    opts.targets.map(async (t): Promise<StunProbe> => {
      const server = joinHostPort(t.host, t.port);
      const base = { server, ...(t.relayUrl !== undefined ? { relayUrl: t.relayUrl } : {}) };
      try {
        const r = await opts.stun.request({ host: t.host, port: t.port }, { timeoutMs });
        results.push(r);
        return { ...base, mapped: joinHostPort(r.mapped.ip.replace(/^::ffff:(?=\d+\.)/, ''), r.mapped.port), rttMs: Math.round(r.rttMs * 1000) / 1000 };
      } catch (e) {
        return { ...base, error: (e as Error).message };
      }
    }),
  );
  const stun = [...probes, ...(opts.errors ?? [])];
  const publicEndpoints: string[] = [];
  const publicAddresses: string[] = [];
  for (const p of probes) {
    if (p.mapped === undefined) continue;
    if (!publicEndpoints.includes(p.mapped)) publicEndpoints.push(p.mapped);
    const ip = p.mapped.startsWith('[') ? p.mapped.slice(1, p.mapped.indexOf(']')) : p.mapped.slice(0, p.mapped.lastIndexOf(':'));
    if (!publicAddresses.includes(ip)) publicAddresses.push(ip);
  }
  const mapping = classifyNatMapping(results);
  const relays: RelayLatency[] = await Promise.all(
    (opts.relays ?? []).map(async (r): Promise<RelayLatency> => {
      const url = normalizeRelayUrl(r.url);
      const rtts = probes.filter((p) => p.relayUrl === url && p.rttMs !== undefined).map((p) => p.rttMs!);
      const out: RelayLatency = { url, ...(rtts.length > 0 ? { stunRttMs: Math.min(...rtts) } : {}) };
      if (opts.relayLatency) {
        try {
          const ms = await opts.relayLatency(url);
          if (ms !== null) out.latencyMs = Math.round(ms * 1000) / 1000;
        } catch (e) {
          out.error = (e as Error).message;
        }
      }
      if (out.stunRttMs === undefined && out.latencyMs === undefined && out.error === undefined) out.error = 'no answer';
      return out;
    }),
  );
  return {
    udp: opts.targets.length === 0 ? null : results.length > 0,
    publicEndpoints,
    publicAddresses,
    mapping,
    mappingVariesByDestination: mapping === 'endpoint-dependent' ? true : mapping === 'endpoint-independent' ? false : null,
    stun,
    relays,
    preferredRelay: pickPreferredRelay(relays),
    durationMs: Math.round(clock.now() - started),
  };
}

/** The relay with the lowest STUN round trip, else the lowest DERP ping; null when none answered. */
export function pickPreferredRelay(relays: readonly RelayLatency[]): string | null {
  let best: RelayLatency | null = null;
  const score = (r: RelayLatency): number => r.stunRttMs ?? (r.latencyMs !== undefined ? r.latencyMs + 1e6 : Infinity);
  for (const r of relays) if (score(r) < Infinity && (best === null || score(r) < score(best))) best = r;
  return best?.url ?? null;
}

/** Human-readable report (the `meshd netcheck` output). */
export function formatNetcheckReport(r: NetcheckReport): string {
  const lines: string[] = [];
  const yn = (b: boolean | null): string => (b === null ? 'unknown' : b ? 'yes' : 'no');
  lines.push(`UDP: ${r.udp === null ? 'not checked (no STUN servers)' : yn(r.udp)}`);
  lines.push(`Public address: ${r.publicEndpoints.length > 0 ? r.publicEndpoints.join(', ') : 'unknown'}`);
  lines.push(
    `Mapping varies by destination: ${yn(r.mappingVariesByDestination)}${r.mappingVariesByDestination === null ? ' (needs answers from two STUN servers)' : r.mappingVariesByDestination ? ' (hard NAT: direct paths are unlikely)' : ''}`,
  );
  lines.push('STUN:');
  for (const p of r.stun) lines.push(`  ${p.server}: ${p.mapped !== undefined ? `${p.mapped} in ${p.rttMs} ms` : `failed (${p.error})`}`);
  if (r.relays.length > 0) {
    lines.push('Relays:');
    for (const x of r.relays) {
      const parts: string[] = [];
      if (x.stunRttMs !== undefined) parts.push(`STUN ${x.stunRttMs} ms`);
      if (x.latencyMs !== undefined) parts.push(`relay ${x.latencyMs} ms`);
      if (x.error !== undefined && parts.length === 0) parts.push(`unreachable (${x.error})`);
      lines.push(`  ${x.url}: ${parts.join(', ')}${x.url === r.preferredRelay ? '  (preferred)' : ''}`);
    }
  }
  return lines.join('\n');
}

export interface StandaloneNetcheckOptions {
  relays?: readonly RelayConfig[];
  stunServers?: readonly string[];
  timeoutMs?: number;
  /** Also measure DERP ping latency over TCP (default true). */
  relayPing?: boolean;
}

async function openDgram(): Promise<Socket> {
  const tryBind = (type: 'udp4' | 'udp6'): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = createSocket({ type, ipv6Only: false });
      s.once('error', (e) => {
        s.close();
        reject(e);
      });
      s.bind(0, type === 'udp6' ? '::' : '0.0.0.0', () => resolve(s));
    });
  try {
    return await tryBind('udp6');
  } catch {
    return tryBind('udp4');
  }
}

/** Netcheck with its own ephemeral UDP socket and, per relay, a throwaway DERP login. */
export async function netcheckStandalone(opts: StandaloneNetcheckOptions): Promise<NetcheckReport> {
  const { targets, errors } = await resolveStunTargets(opts.relays ?? [], opts.stunServers ?? []);
  const sock = await openDgram();
  const v6 = sock.address().family === 'IPv6';
  const stun = new StunClient({
    send: (packet, port, host) => {
      const to = v6 && isIP(host) === 4 ? `::ffff:${host}` : host;
      sock.send(packet, port, to);
    },
  });
  sock.on('message', (msg) => void stun.handlePacket(msg));
  sock.on('error', () => undefined);
  const key = generateBoxKeyPair();
  const relayLatency = async (url: string): Promise<number | null> => {
    const c = new RelayClient({ url, privateKey: key.privateKey, backoffMaxMs: 1000 });
    try {
      await c.waitConnected(opts.timeoutMs ?? 5000);
      return await c.ping(opts.timeoutMs ?? 5000);
    } finally {
      await c.stop();
    }
  };
  try {
    return await runNetcheck({
      stun,
      targets,
      errors,
      relays: opts.relays ?? [],
      ...(opts.relayPing === false ? {} : { relayLatency }),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
  } finally {
    stun.close();
    sock.close();
  }
}

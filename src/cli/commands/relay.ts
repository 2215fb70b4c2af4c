/**
 * `meshd relay serve [--listen ADDR:PORT] [--stun-port N | --no-stun] [--cert F --key F |
 * --insecure-http] …`: run a DERP relay with a STUN responder in the foreground until
 * SIGINT/SIGTERM. Prints the relay URL, server key and TLS fingerprint once listening, a status
 * line of counters every --stats-interval seconds (every counter with --json), and the final
 * counters on exit.
 *
 * TLS by default: with --cert/--key the relay serves that certificate (clients verify it the
 * usual way); without, a self-signed certificate kept in the relay's state directory, whose
 * fingerprint goes into the relay record for clients to pin. --insecure-http serves plain HTTP,
 * for tests and labs that opt in.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { splitHostPort } from '../../util/host-port.js';
import { createLogger, TextSink } from '../../util/log.js';
import { waitForStop } from '../../util/signals.js';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../../errors.js';
import type { RelayServerOptions, RelayServerStats, RelayTlsOptions } from '../../engine/relay/server.js';
import { certificateFingerprint, checkPrivateKeyPem, loadOrCreateRelayCertificate } from '../../engine/relay/tls-cert.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { controlContext } from './network.js';

export const DEFAULT_RELAY_LISTEN = '0.0.0.0:3340';
export const DEFAULT_RELAY_STUN_PORT = 3478;

export interface RelayServeOptions {
  /** "addr:port", "[v6]:port" or ":port". */
  listen: string;
  /** STUN port; null = no STUN responder. */
  stunPort: number | null;
  /** Stop when this aborts (besides SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Serve plain HTTP (tests, labs). */
  insecureHttp?: boolean;
  /** PEM files of a real certificate (normal verification by clients). */
  certFile?: string;
  keyFile?: string;
  /** Where the self-signed certificate lives (default HOME/relay). */
  stateDir?: string;
  /** Host name for the URL and the self-signed certificate (default: this host's name). */
  hostname?: string;
  /** Seconds between status lines (default 60). */
  statsIntervalSec?: number;
  /** Server limits (login timeout, connection caps, rate...). */
  limits?: Partial<Pick<RelayServerOptions, 'loginTimeoutMs' | 'maxConnections' | 'maxConnectionsPerIp' | 'sendRateBytesPerSec' | 'allowLegacyLogin'>>;
}

export interface RelayTls {
  tls: RelayTlsOptions;
  /** Pin for the relay record (self-signed), or of the given certificate. */
  fingerprint: string;
  selfSigned: boolean;
}

/** The TLS material of `relay serve` / `up --relay`: the given files, or the self-signed certificate in stateDir. */
export function relayTls(opts: { certFile?: string; keyFile?: string; stateDir: string; names: readonly string[] }): RelayTls {
  if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) throw new UsageError('--cert and --key go together');
  if (opts.certFile !== undefined && opts.keyFile !== undefined) {
    const cert = readFileSync(opts.certFile, 'utf8');
    const key = readFileSync(opts.keyFile, 'utf8');
    checkPrivateKeyPem(key);
    return { tls: { cert, key }, fingerprint: certificateFingerprint(cert), selfSigned: false };
  }
  const c = loadOrCreateRelayCertificate(opts.stateDir, { commonName: 'meshd-relay', altNames: opts.names });
  return { tls: { cert: c.certPem, key: c.keyPem }, fingerprint: c.fingerprint, selfSigned: true };
}

function parseCount(v: string, what: string): number {
  if (!/^\d{1,12}$/.test(v)) throw new UsageError(`${what} "${v}" is not a whole number`);
  return Number(v);
}

/** Parses "addr:port" / "[v6]:port" / ":port" (all addresses). */
export function parseListen(s: string): { host: string; port: number } {
  const bad = (): UsageError => new UsageError(`--listen "${s}" is not ADDR:PORT`);
  const hp = splitHostPort(s, { allowZeroPort: true });
  if (!hp) throw bad();
  return { host: hp.host || '0.0.0.0', port: hp.port };
}

function parseStunPort(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new UsageError(`--stun-port "${v}" is not a port number`);
  return Number(v);
}

function summary(s: RelayServerStats, all: boolean): Record<string, number> {
  if (all) return { ...s };
  return {
    clients: s.currentClients,
    accepts: s.accepts,
    packetsReceived: s.packetsReceived,
    packetsSent: s.packetsSent,
    packetsDropped: s.packetsDropped,
    stunRequests: s.stunRequests,
    stunResponses: s.stunResponses,
    refused: s.refusedPerIpCap + s.refusedTotalCap,
    loginFailures: s.loginFailures + s.loginReplays + s.legacyLoginsRefused + s.loginTimeouts + s.upgradeTimeouts,
  };
}

/** Run the relay until SIGINT/SIGTERM (or opts.signal). */
export async function runRelayServe(ctx: CommandContext, opts: RelayServeOptions): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const unspecified = host === '0.0.0.0' || host === '::';
  const name = opts.hostname ?? (unspecified ? hostname() : host);
  if (opts.insecureHttp && opts.certFile !== undefined) throw new UsageError('--insecure-http and --cert exclude each other');
  const t = opts.insecureHttp
    ? null
    : relayTls({
        ...(opts.certFile !== undefined ? { certFile: opts.certFile } : {}),
        ...(opts.keyFile !== undefined ? { keyFile: opts.keyFile } : {}),
        stateDir: opts.stateDir ?? join(ctx.home, 'relay'),
        names: [...new Set([name, ...(unspecified ? [] : [host])])],
      });
  // loaded here, not with the CLI: every daemon runs the CLI, few run a relay
  const { startRelayServer } = await import('../../engine/relay/server.js');
  const server = await startRelayServer({
    httpPort: port,
    host,
    stunPort: opts.stunPort,
    log: createLogger({ component: 'relay', sinks: [new TextSink((line) => ctx.progress(line.trimEnd()))] }),
    ...(t ? { tls: t.tls } : {}),
    ...opts.limits,
  });
  const addr = server.address();
  const key = Buffer.from(server.publicKey).toString('hex');
  const urlHost = isIP(name) === 6 ? `[${name}]` : name;
  const scheme = t ? 'https' : 'http';
  const defaultPort = t ? 443 : 80;
  const url = `${scheme}://${urlHost}${addr.httpPort === defaultPort ? '' : `:${addr.httpPort}`}/derp`;
  const fp = t ? { fingerprint: t.fingerprint, selfSigned: t.selfSigned } : {};
  ctx.print(
    { event: 'relay-listening', url, host, httpPort: addr.httpPort, stunPort: addr.stunPort, publicKey: key, tls: t !== null, ...fp },
    `relay listening: ${url} (${t ? 'HTTPS' : 'plain HTTP'} ${host}:${addr.httpPort}${addr.stunPort !== null ? `, STUN UDP ${addr.stunPort}` : ', no STUN'}), key ${key}` +
      (t ? `\nTLS key fingerprint ${t.fingerprint}${t.selfSigned ? ' (self-signed: put it in the relay record)' : ''}` : ''),
  );
  const ticker = setInterval(() => ctx.io.stderr(JSON.stringify({ event: 'relay-stats', ...summary(server.stats(), ctx.json) })), (opts.statsIntervalSec ?? 60) * 1000);
  ticker.unref();
  const why = await waitForStop(opts.signal ? { signal: opts.signal } : {});
  ctx.progress(`relay stopping (${why})`);
  clearInterval(ticker);
  const final = summary(server.stats(), ctx.json);
  await server.stop();
  ctx.io.stderr(JSON.stringify({ event: 'relay-stopped', ...final }));
}

export function registerRelay(program: Command, io: Io): void {
  const relay = subcommand(program, 'relay', 'run a DERP relay (packets routed by WireGuard key) with a STUN responder');
  const serve = subcommand(relay, 'serve', 'run the relay in the foreground until interrupted')
    .addOption(new Option('--listen <addr:port>', 'HTTP address for /derp').default(DEFAULT_RELAY_LISTEN))
    .addOption(new Option('--stun-port <n>', 'UDP port of the STUN responder').default(String(DEFAULT_RELAY_STUN_PORT)))
    .addOption(new Option('--no-stun', 'no STUN responder'))
    .addOption(new Option('--cert <file>', 'PEM certificate (chain) to serve; clients verify it normally'))
    .addOption(new Option('--key <file>', 'PEM private key of --cert'))
    .addOption(new Option('--insecure-http', 'serve plain HTTP instead of HTTPS (tests and labs only)'))
    .addOption(new Option('--state-dir <dir>', 'where the self-signed certificate is kept (default HOME/relay)'))
    .addOption(new Option('--hostname <name>', 'name (or IP) in the relay URL and the self-signed certificate'))
    .addOption(new Option('--login-timeout <ms>', 'time a connection has to upgrade and log in').default('10000'))
    .addOption(new Option('--max-conns <n>', 'connections open at once').default('10000'))
    .addOption(new Option('--max-conns-per-ip <n>', 'connections open at once from one address').default('64'))
    .addOption(new Option('--rate-limit <bytes/s>', 'bytes per second each key may send (0 = none)').default(String(4 << 20)))
    .addOption(new Option('--allow-legacy-login', 'accept standard DERP clients (their login can be replayed)'))
    .addOption(new Option('--stats-interval <s>', 'seconds between status lines').default('60'));
  action(serve, io, async (ctx) => {
    const o = serve.opts<{
      listen: string;
      stunPort: string;
      stun: boolean;
      cert?: string;
      key?: string;
      insecureHttp?: boolean;
      stateDir?: string;
      hostname?: string;
      loginTimeout: string;
      maxConns: string;
      maxConnsPerIp: string;
      rateLimit: string;
      allowLegacyLogin?: boolean;
      statsInterval: string;
    }>();
    const interval = parseCount(o.statsInterval, '--stats-interval');
    if (interval < 1) throw new UsageError('--stats-interval must be at least 1');
    await runRelayServe(ctx, {
      listen: o.listen,
      stunPort: o.stun === false ? null : parseStunPort(o.stunPort),
      ...(o.insecureHttp ? { insecureHttp: true } : {}),
      ...(o.cert !== undefined ? { certFile: o.cert } : {}),
      ...(o.key !== undefined ? { keyFile: o.key } : {}),
      ...(o.stateDir !== undefined ? { stateDir: o.stateDir } : {}),
      ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
      statsIntervalSec: interval,
      limits: {
        loginTimeoutMs: Math.max(1, parseCount(o.loginTimeout, '--login-timeout')),
        maxConnections: parseCount(o.maxConns, '--max-conns'),
        maxConnectionsPerIp: parseCount(o.maxConnsPerIp, '--max-conns-per-ip'),
        sendRateBytesPerSec: parseCount(o.rateLimit, '--rate-limit'),
        ...(o.allowLegacyLogin ? { allowLegacyLogin: true } : {}),
      },
    });
  });

  action(subcommand(relay, 'proposals', 'relays proposed by devices and members (owner)'), io, async (ctx) => {
    const { listRelayProposals } = await import('../../control/relay-ops.js');
    const rows = await listRelayProposals(controlContext(ctx));
    ctx.print({ proposals: rows }, () =>
      rows.length === 0
        ? 'No relay proposals.'
        : rows.map((r) => `${r.approved ? 'in use  ' : 'proposed'}  ${r.url}  (${r.region}, by ${r.proposedBy.slice(0, 24)}…)`).join('\n'),
    );
  });

  action(subcommand(relay, 'approve <url>', 'let every node use a proposed relay (owner)'), io, async (ctx, url: string) => {
    const { approveRelay } = await import('../../control/relay-ops.js');
    const r = await approveRelay(controlContext(ctx), url);
    ctx.print(r, `relay ${r.url} approved: every node of the network may use it now.`);
  });
}

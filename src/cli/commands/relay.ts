/**
 * `meshd relay serve [--listen ADDR:PORT] [--stun-port N | --no-stun]`: run a DERP relay with a
 * STUN responder in the foreground until SIGINT/SIGTERM. Prints the relay URL and server key
 * once listening, one log line per minute of counters, and the final counters on exit.
 */
import { splitHostPort } from '../../util/host-port.js';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../../errors.js';
import { startRelayServer, type RelayServerStats } from '../../engine/relay/server.js';
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

function summary(s: RelayServerStats): Record<string, number> {
  return {
    clients: s.currentClients,
    accepts: s.accepts,
    packetsReceived: s.packetsReceived,
    packetsSent: s.packetsSent,
    packetsDropped: s.packetsDropped,
    stunRequests: s.stunRequests,
    stunResponses: s.stunResponses,
  };
}

/** Run the relay until SIGINT/SIGTERM (or opts.signal). */
export async function runRelayServe(ctx: CommandContext, opts: RelayServeOptions): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const server = await startRelayServer({
    httpPort: port,
    host,
    stunPort: opts.stunPort,
    log: (line) => ctx.progress(line),
  });
  const addr = server.address();
  const key = Buffer.from(server.publicKey).toString('hex');
  const urlHost = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${addr.httpPort}/derp`;
  ctx.print(
    { event: 'relay-listening', url, host, httpPort: addr.httpPort, stunPort: addr.stunPort, publicKey: key },
    `relay listening: ${url} (HTTP ${host}:${addr.httpPort}${addr.stunPort !== null ? `, STUN UDP ${addr.stunPort}` : ', no STUN'}), key ${key}`,
  );
  const ticker = setInterval(() => ctx.io.stderr(JSON.stringify({ event: 'relay-stats', ...summary(server.stats()) })), 60_000);
  ticker.unref();
  await new Promise<void>((resolve) => {
    const stop = (why: string): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      opts.signal?.removeEventListener('abort', onAbort);
      ctx.progress(`relay stopping (${why})`);
      resolve();
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    const onAbort = (): void => stop('abort');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    opts.signal?.addEventListener('abort', onAbort);
  });
  clearInterval(ticker);
  const final = summary(server.stats());
  await server.stop();
  ctx.io.stderr(JSON.stringify({ event: 'relay-stopped', ...final }));
}

export function registerRelay(program: Command, io: Io): void {
  const relay = subcommand(program, 'relay', 'run a DERP relay (packets routed by WireGuard key) with a STUN responder');
  const serve = subcommand(relay, 'serve', 'run the relay in the foreground until interrupted')
    .addOption(new Option('--listen <addr:port>', 'HTTP address for /derp').default(DEFAULT_RELAY_LISTEN))
    .addOption(new Option('--stun-port <n>', 'UDP port of the STUN responder').default(String(DEFAULT_RELAY_STUN_PORT)))
    .addOption(new Option('--no-stun', 'no STUN responder'));
  action(serve, io, async (ctx) => {
    const o = serve.opts<{ listen: string; stunPort: string; stun: boolean }>();
    await runRelayServe(ctx, { listen: o.listen, stunPort: o.stun === false ? null : parseStunPort(o.stunPort) });
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

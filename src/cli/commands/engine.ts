/**
 * `meshd engine --config FILE [--tun NAME]`: run the WireGuard engine in the foreground from a
 * wg-quick file — no DWN, no daemon. Creates the TUN, sets its MTU, addresses and routes to the
 * peers' allowed IPs, logs one line per event (JSON lines with --json), prints the peer stats on
 * SIGUSR1, re-reads the file on SIGHUP (peers added, changed and removed while traffic flows,
 * like `wg syncconf`), and on SIGINT/SIGTERM stops cleanly, removing the TUN.
 */
import { readFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import type { Command } from 'commander';
import { Option } from 'commander';
import { MeshdError, UsageError } from '../../errors.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { parseWgConfig, type WgConfig } from '../../engine/wg-config.js';
import { Engine, type EngineEvent, type EnginePeerConfig } from '../../engine/engine.js';
import { UdpBind } from '../../engine/wireguard/udp-bind.js';
import { formatIp, formatPrefix } from '../../engine/wireguard/ip-prefix.js';
import { DEFAULT_TUN_NAME, TunDevice } from '../../engine/tun/tun-device.js';

interface EngineCommandOptions {
  config?: string;
  tun?: string;
}

/** Resolve "name:port" endpoints to "ip:port" (IP endpoints pass through). */
async function resolveEndpoint(ep: string): Promise<string> {
  if (ep.startsWith('[')) return ep;
  const colon = ep.lastIndexOf(':');
  const host = ep.slice(0, colon);
  if (/^[\d.]+$/.test(host)) return ep;
  try {
    const r = await lookup(host);
    return r.family === 6 ? `[${r.address}]${ep.slice(colon)}` : `${r.address}${ep.slice(colon)}`;
  } catch (cause) {
    throw new MeshdError('E_CONFIG_INVALID', `cannot resolve endpoint host ${host}`, { cause });
  }
}

async function openBind(port: number): Promise<UdpBind> {
  try {
    return await UdpBind.open({ address: '::', port });
  } catch {
    // no IPv6 here: IPv4 only
    return UdpBind.open({ address: '0.0.0.0', port });
  }
}

function logLine(ctx: CommandContext, event: string, fields: Record<string, unknown>): void {
  if (ctx.json) {
    ctx.io.stderr(JSON.stringify({ time: new Date().toISOString(), event, ...fields }));
    return;
  }
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  ctx.io.stderr(`${new Date().toISOString()} ${event}${rest ? ' ' + rest : ''}`);
}

function eventFields(e: EngineEvent): Record<string, unknown> {
  const { type: _type, ...rest } = e;
  void _type;
  return rest;
}

function peerConfigs(config: WgConfig): Promise<EnginePeerConfig[]> {
  return Promise.all(
    config.peers.map(async (p) => ({
      publicKey: p.publicKey,
      allowedIps: p.allowedIps.map(formatPrefix),
      endpoint: p.endpoint === null ? null : await resolveEndpoint(p.endpoint),
      persistentKeepalive: p.persistentKeepalive,
      presharedKey: p.presharedKey,
    })),
  );
}

/** Routes for the peers' allowed IPs; default routes are left alone (they would take over the host). */
function routesFor(ctx: CommandContext, peers: EnginePeerConfig[]): string[] {
  const routes = new Set<string>();
  for (const p of peers) {
    for (const a of p.allowedIps ?? []) {
      if (a.endsWith('/0')) logLine(ctx, 'route-skipped', { prefix: a, reason: 'default routes are not installed by meshd engine' });
      else routes.add(a);
    }
  }
  return [...routes];
}

async function readConfig(file: string): Promise<WgConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new MeshdError('E_CONFIG_INVALID', `cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  return parseWgConfig(text);
}

/**
 * Run until SIGINT/SIGTERM (or `signal` aborts). With `configFile`, SIGHUP re-reads it and
 * applies the peer list (the interface settings need a restart).
 */
export async function runEngine(
  ctx: CommandContext,
  config: WgConfig,
  tunName: string,
  opts: { configFile?: string; signal?: AbortSignal } = {},
): Promise<void> {
  const signal = opts.signal;
  const mtu = config.interface.mtu ?? 1420;
  const peers = await peerConfigs(config);
  if (config.ignored.length > 0) logLine(ctx, 'config-ignored', { keys: config.ignored });

  const routes = routesFor(ctx, peers);
  const tun = TunDevice.open({ name: tunName });
  let bind: UdpBind | null = null;
  let engine: Engine;
  try {
    await tun.configure({ mtu, addresses: config.interface.addresses.map((a) => `${formatIp(a.ip)}/${a.bits}`), routes });
    bind = await openBind(config.interface.listenPort ?? 0);
    engine = new Engine({
      tun,
      bind,
      mtu,
      privateKey: config.interface.privateKey,
      peers,
      onEvent: (e) => logLine(ctx, e.type, eventFields(e)),
    });
  } catch (e) {
    await bind?.close();
    await tun.close();
    throw e;
  }
  const running = engine;
  let installedRoutes = routes;
  const reload = async (): Promise<void> => {
    if (opts.configFile === undefined) return;
    try {
      const next = await readConfig(opts.configFile);
      const nextPeers = await peerConfigs(next);
      running.setPeers(nextPeers);
      const nextRoutes = routesFor(ctx, nextPeers);
      for (const r of nextRoutes) if (!installedRoutes.includes(r)) await tun.addRoute(r);
      for (const r of installedRoutes) if (!nextRoutes.includes(r)) await tun.removeRoute(r).catch(() => undefined);
      installedRoutes = nextRoutes;
      logLine(ctx, 'config-reloaded', { peers: nextPeers.length });
    } catch (e) {
      logLine(ctx, 'config-reload-failed', { error: (e as Error).message });
    }
  };
  logLine(ctx, 'engine-up', {
    interface: tun.name,
    port: running.listenPort,
    publicKey: running.publicKey,
    udp: bind.kind,
    peers: peers.length,
  });

  await new Promise<void>((resolve) => {
    const stats = (): void => logLine(ctx, 'stats', { peers: running.peerStats(), counters: running.stats() });
    const onHup = (): void => void reload();
    const stop = (why: string): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.off('SIGUSR1', stats);
      process.off('SIGHUP', onHup);
      signal?.removeEventListener('abort', onAbort);
      logLine(ctx, 'engine-stopping', { reason: why });
      void running.stop().then(resolve, resolve);
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    const onAbort = (): void => stop('abort');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.on('SIGUSR1', stats);
    process.on('SIGHUP', onHup);
    signal?.addEventListener('abort', onAbort);
  });
  logLine(ctx, 'engine-stopped', { interface: tun.name });
}

export function registerEngine(program: Command, io: Io): void {
  const cmd = subcommand(program, 'engine', 'run the WireGuard engine in the foreground from a wg-quick config file')
    .addOption(new Option('--config <file>', 'wg-quick configuration ([Interface] and [Peer] sections)'))
    .addOption(new Option('--tun <name>', `TUN interface name (default ${DEFAULT_TUN_NAME})`));
  action(cmd, io, async (ctx) => {
    const o = cmd.opts<EngineCommandOptions>();
    if (!o.config) throw new UsageError('--config FILE is required');
    const config = await readConfig(o.config);
    await runEngine(ctx, config, o.tun ?? DEFAULT_TUN_NAME, { configFile: o.config });
  });
}

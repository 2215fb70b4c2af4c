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
import { Engine, engineEventLevel, type EnginePeerConfig } from '../../engine/engine.js';
import { DEFAULT_MTU } from '../../engine/mtu.js';
import { createLogger, JsonLinesSink, TextSink, type Logger } from '../../util/log.js';
import { waitForStop } from '../../util/signals.js';
import { UdpBind } from '../../engine/wireguard/udp-bind.js';
import { formatIp } from '../../util/ip.js';
import { formatPrefix } from '../../util/prefix.js';
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

/** Every event on stderr (debug included: this command exists to watch the engine). */
function engineLogger(ctx: CommandContext): Logger {
  const out = (line: string): void => ctx.io.stderr(line.trimEnd());
  return createLogger({ level: 'debug', component: 'engine', sinks: [ctx.json ? new JsonLinesSink(out) : new TextSink(out)] });
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
function routesFor(log: Logger, peers: EnginePeerConfig[]): string[] {
  const routes = new Set<string>();
  for (const p of peers) {
    for (const a of p.allowedIps ?? []) {
      if (a.endsWith('/0')) log.warn('route-skipped', { prefix: a, reason: 'default routes are not installed by meshd engine' });
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
  const log = engineLogger(ctx);
  const mtu = config.interface.mtu ?? DEFAULT_MTU;
  const peers = await peerConfigs(config);
  if (config.ignored.length > 0) log.warn('config-ignored', { keys: config.ignored });

  const routes = routesFor(log, peers);
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
      onEvent: (e) => {
        const { type, ...fields } = e;
        log.log(engineEventLevel(e), type, fields);
      },
    }).start();
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
      const nextRoutes = routesFor(log, nextPeers);
      for (const r of nextRoutes) if (!installedRoutes.includes(r)) await tun.addRoute(r);
      for (const r of installedRoutes) if (!nextRoutes.includes(r)) await tun.removeRoute(r).catch(() => undefined);
      installedRoutes = nextRoutes;
      log.info('config-reloaded', { peers: nextPeers.length });
    } catch (e) {
      log.warn('config-reload-failed', { error: (e as Error).message });
    }
  };
  log.info('engine-up', {
    interface: tun.name,
    port: running.listenPort,
    publicKey: running.publicKey,
    udp: bind.kind,
    peers: peers.length,
    offload: { tun: tun.offload, udp: bind.offload },
  });

  const why = await waitForStop({
    ...(opts.signal ? { signal: opts.signal } : {}),
    on: {
      SIGUSR1: () =>
        log.info('stats', {
          peers: running.peerStats(),
          counters: running.stats(),
          tun: { ...tun.stats, offload: tun.offload },
          udp: { ...bind.stats, offload: bind.offload },
        }),
      SIGHUP: () => void reload(),
    },
  });
  log.info('engine-stopping', { reason: why });
  // the engine stops first; this command opened the bind and the TUN, so it closes them
  await running.stop();
  await Promise.allSettled([bind.close(), tun.close()]);
  log.info('engine-stopped', { interface: tun.name });
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

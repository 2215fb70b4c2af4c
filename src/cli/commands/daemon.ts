/**
 * `meshd up` and `meshd down`: start the agent (creating or joining a network first when
 * asked), in the background by default, returning once the tunnel is up and the first network
 * map is applied; stop it, leaving no device, route or socket behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { initProfile } from '../../identity/profile.js';
import { MeshdError, UsageError } from '../../errors.js';
import { readJoinedNetwork, writeJoinedNetwork } from '../../control/local-state.js';
import type { ControlContext } from '../../control/session.js';
import { callDaemon } from '../../daemon/api.js';
import { runningDaemonPid } from '../../daemon/lock.js';
import { logPath, spawnHeldDaemon, waitForRelease } from '../../daemon/background.js';
import { parsePort } from './network.js';
import { joinHostPort, splitHostPort } from '../../util/host-port.js';
import type { AgentStatus, RoutingOptions } from '../../daemon/agent-types.js';

interface UpOptions {
  /** `meshd up <invite>`: the invite line. */
  invite?: string;
  create?: string;
  endpoint?: string;
  anchor?: string;
  network?: string;
  cidr?: string;
  relay?: string | boolean;
  relayStunPort?: string;
  relayUrl?: string;
  relayInsecureHttp?: boolean;
  foreground?: boolean;
  tun?: string;
  dwnListen?: string;
  hostname?: string;
  acceptDns?: boolean;
  timeout?: string;
  wait?: string;
  metricsListen?: string;
  advertiseRoutes?: string;
  advertiseExitNode?: boolean;
  snatSubnetRoutes?: string;
  exitNode?: string;
  exitNodeAllowLanAccess?: boolean;
}

/** The routing flags of `up` as agent options (usage errors before anything starts). */
async function routingOptions(o: UpOptions): Promise<RoutingOptions | undefined> {
  const any = o.advertiseRoutes !== undefined || o.advertiseExitNode || o.exitNode !== undefined || o.exitNodeAllowLanAccess || o.snatSubnetRoutes !== undefined;
  if (!any) return undefined;
  const { parseAdvertisedRoutes } = await import('../../control/routes.js');
  const snat = o.snatSubnetRoutes ?? 'true';
  if (snat !== 'true' && snat !== 'false') throw new UsageError(`--snat-subnet-routes takes true or false, not "${snat.slice(0, 20)}"`);
  if (o.exitNode !== undefined && o.advertiseExitNode) throw new UsageError('a node cannot use an exit node and be one: give --exit-node or --advertise-exit-node');
  if (o.exitNode !== undefined && (o.exitNode.length === 0 || o.exitNode.length > 2048)) throw new UsageError('--exit-node takes a host name, mesh IP or DID');
  if (o.exitNodeAllowLanAccess && o.exitNode === undefined) throw new UsageError('--exit-node-allow-lan-access goes with --exit-node');
  return {
    advertiseRoutes: o.advertiseRoutes !== undefined ? parseAdvertisedRoutes(o.advertiseRoutes, []) : [],
    advertiseExitNode: o.advertiseExitNode === true,
    snatSubnetRoutes: snat === 'true',
    exitNode: o.exitNode ?? null,
    exitNodeAllowLanAccess: o.exitNodeAllowLanAccess === true,
  };
}

/** The routing flags again, for the background daemon's command line. */
function routingArgs(r: RoutingOptions | undefined): string[] {
  if (!r) return [];
  const args: string[] = [];
  if (r.advertiseRoutes.length > 0) args.push('--advertise-routes', r.advertiseRoutes.join(','));
  if (r.advertiseExitNode) args.push('--advertise-exit-node');
  if (!r.snatSubnetRoutes) args.push('--snat-subnet-routes', 'false');
  if (r.exitNode !== null) args.push('--exit-node', r.exitNode);
  if (r.exitNodeAllowLanAccess) args.push('--exit-node-allow-lan-access');
  return args;
}

function parseListen(s: string, defaultPort: number): { host: string; port: number } {
  const hp = splitHostPort(s, { defaultPort });
  if (!hp) throw new UsageError(`invalid listen address "${s}"`, { hint: 'use ADDR[:PORT], e.g. 0.0.0.0:3340' });
  return { host: hp.host || '0.0.0.0', port: hp.port };
}

export function summarizeUp(s: AgentStatus): string {
  const lines = [`meshd is up. Mesh IP: ${s.identity.meshIP ?? '?'}`];
  if (s.network) lines.push(`Network "${s.network.name}" ${s.network.id} via ${s.network.endpoint}`);
  const online = s.peers.filter((p) => p.online).length;
  lines.push(`Peers: ${s.peers.length} (${online} online). See \`meshd status\`.`);
  if (s.relayServer) lines.push(`Relay: ${s.relayServer.url}`);
  return lines.join('\n');
}

/** Root or CAP_NET_ADMIN (bit 12 of the effective capabilities): what a TUN device needs. */
function canManageNetwork(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
  } catch {
    return false;
  }
}

async function prepareNetwork(ctx: CommandContext, cc: ControlContext, o: UpOptions): Promise<void> {
  if (o.invite !== undefined) {
    if (o.create !== undefined || o.anchor || o.network) throw new UsageError('an invite cannot be combined with --create, --anchor or --network');
    const { parseInvite, requestJoinByInvite } = await import('../../control/invite-ops.js');
    const inv = parseInvite(o.invite);
    const existing = readJoinedNetwork(cc.profile.dir);
    if (existing?.networkId === inv.networkId) return; // joined before: just start
    if (existing) {
      throw new MeshdError('E_CONFIG_INVALID', `this device is already in network ${existing.networkId}`, { hint: 'run `meshd network leave` first, or use another profile (--profile)' });
    }
    await requestJoinByInvite(cc, inv, { timeoutMs: Number(o.wait ?? 600) * 1000 });
    const { joinNetwork } = await import('../../control/network-ops.js');
    const r = await joinNetwork(cc, { anchor: inv.anchor, networkId: inv.networkId, endpoint: inv.endpoint });
    ctx.progress(`Joined network "${r.name}". Mesh IP: ${r.meshIP ?? '?'}`);
    return;
  }
  if (o.create !== undefined) {
    if (o.anchor || o.network) throw new UsageError('--create cannot be combined with --anchor/--network');
    const { createNetwork } = await import('../../control/network-ops.js');
    const r = await createNetwork(cc, { name: o.create, ...(o.endpoint ? { endpoint: o.endpoint } : {}), ...(o.cidr ? { cidr: o.cidr } : {}) });
    ctx.progress(`Network "${r.name}" created. Mesh IP: ${r.meshIP ?? '?'}`);
    ctx.progress(`Network id: ${r.networkId}`);
    if (r.embedded) {
      const { reachableEndpoint } = await import('../../control/invite-ops.js');
      const joined = readJoinedNetwork(cc.profile.dir);
      if (joined) ctx.progress(`This machine hosts the network's DWN; other machines reach it at ${reachableEndpoint(joined, undefined)}`);
    }
    ctx.progress('To add another machine: meshd invite   (it prints the one line to run there)');
    return;
  }
  if (o.anchor || o.network) {
    if (!o.anchor || !o.network) throw new UsageError('--anchor and --network go together');
    const existing = readJoinedNetwork(cc.profile.dir);
    if (existing && existing.networkId === o.network) return; // already joined: just start
    const { joinNetwork } = await import('../../control/network-ops.js');
    const r = await joinNetwork(cc, { anchor: o.anchor, networkId: o.network, ...(o.endpoint ? { endpoint: o.endpoint } : {}) });
    ctx.progress(`Joined network "${r.name}". Mesh IP: ${r.meshIP ?? '?'}`);
    return;
  }
  if (!readJoinedNetwork(cc.profile.dir)) {
    throw new MeshdError('E_NO_NETWORK', 'this device is in no network yet', {
      hint: 'run `meshd up --create NAME`, or `meshd up --anchor DID --network ID --endpoint URL` once the owner has added you',
    });
  }
}

export function registerDaemon(program: Command, io: Io): void {
  const up = subcommand(program, 'up [invite]', 'start the mesh agent (joining with an invite, or creating or joining a network first)')
    .option('--create <name>', 'create a network first (this device becomes its owner)')
    .option('--endpoint <url>', 'DWN endpoint URL (default: the embedded DWN)')
    .option('--anchor <did>', "join: the network owner's DID")
    .option('--network <id>', 'join: the network id')
    .option('--cidr <cidr>', 'with --create: IPv4 mesh prefix (default 10.200.0.0/16)')
    .option('--relay [addr]', 'also run a relay (DERP + STUN) here, on ADDR[:PORT] (default 0.0.0.0:3340)')
    .option('--relay-stun-port <port>', 'UDP port of the relay STUN responder', '3478')
    .option('--relay-url <url>', 'with --relay: the URL other nodes reach it at (default https://ADDR:PORT/derp)')
    .option('--relay-insecure-http', 'with --relay: serve plain HTTP instead of HTTPS (tests and labs only)')
    .option('--dwn-listen <addr>', 'address the embedded DWN listens on (default 0.0.0.0: other machines reach it; remembered)')
    .option('--tun <name>', 'tunnel device name', 'meshd0')
    .option('--hostname <name>', 'the name peers see for this device, and its mesh DNS name (default: the host name; remembered; on a running daemon: renames it)')
    .option('--accept-dns', 'without systemd-resolved: point /etc/resolv.conf at the mesh DNS server (restored by `meshd down`; remembered)')
    .option('--no-accept-dns', "leave the host's DNS settings alone, systemd-resolved included (remembered)")
    .option('--advertise-routes <cidrs>', 'offer to route these subnets for the mesh, IPv4 or IPv6, e.g. 192.168.1.0/24,2001:db8:1::/64 (used once the owner approves them)')
    .option('--advertise-exit-node', 'offer to carry all traffic of other nodes to the internet (used once the owner approves it)')
    .option('--snat-subnet-routes <bool>', 'masquerade mesh traffic to advertised subnets (false: the LAN sees mesh addresses and needs a route back)', 'true')
    .option('--exit-node <name|ip|did>', 'send all traffic through this exit node')
    .option('--exit-node-allow-lan-access', 'with --exit-node: keep reaching the local networks directly')
    .option('--foreground', 'run in the foreground (logs to stderr)')
    .option('--timeout <seconds>', 'how long to wait for the daemon to come up', '60')
    .option('--wait <seconds>', "with an invite: how long to wait for the owner's meshd to admit this device", '600')
    .option('--metrics-listen <addr:port>', 'also serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9101)');
  action(up, io, async (ctx, invite: string | undefined) => {
    const o: UpOptions = { ...up.opts<UpOptions>(), ...(invite !== undefined ? { invite } : {}) };
    if (!canManageNetwork()) {
      throw new MeshdError('E_TUN', 'meshd up needs root or CAP_NET_ADMIN to create its tunnel device', { hint: `run it with sudo: sudo meshd up${invite !== undefined ? ' <invite>' : ''}` });
    }
    const { profile, created } = initProfile(ctx.home, ctx.profile);
    if (created) ctx.progress(`Your device identity: ${profile.did}`);
    if (o.hostname !== undefined) {
      const { validateRecord } = await import('../../control/records.js');
      try {
        validateRecord('nodeInfo', { hostname: o.hostname, os: 'linux', version: '0' }, 'write');
      } catch {
        throw new UsageError(`--hostname "${o.hostname.slice(0, 80)}" is not a host name`, { hint: 'letters, digits, dots, dashes and underscores' });
      }
    }
    const pid = runningDaemonPid(ctx.home);
    if (pid !== null) {
      // already up: say so and succeed, unless asked for another network than the one it runs
      const joined = readJoinedNetwork(profile.dir);
      const wants = o.invite !== undefined ? (await import('../../control/invite-ops.js')).parseInvite(o.invite).networkId : o.network;
      if (o.create !== undefined || (wants !== undefined && wants !== joined?.networkId)) {
        throw new MeshdError('E_DAEMON_RUNNING', `meshd is already running for ${ctx.home} (pid ${pid}) in network ${joined?.networkId ?? '?'}`, {
          hint: 'run `meshd down` first to create or join another network',
        });
      }
      if (o.hostname !== undefined && joined && o.hostname !== joined.hostname) {
        // a new name for the running daemon: remembered, and published at once
        writeJoinedNetwork(profile.dir, { ...joined, hostname: o.hostname });
        await callDaemon(ctx.home, 'POST', '/v0/hostname', { as: profile.did, hostname: o.hostname });
        ctx.progress(`Renamed this device to "${o.hostname}".`);
      }
      if (o.acceptDns !== undefined) ctx.progress('--accept-dns takes effect with the next `meshd up` (after `meshd down`).');
      const s = await callDaemon<AgentStatus & { state: string; pid: number }>(ctx.home, 'GET', '/v0/status/live');
      if (o.advertiseRoutes !== undefined || o.advertiseExitNode || o.exitNode !== undefined) {
        ctx.progress('Route and exit node options take effect when meshd starts: run `meshd down`, then `meshd up` with them.');
      }
      ctx.print({ ...s, already: true }, () => `meshd is already up (pid ${pid}).\n${summarizeUp(s)}`);
      return;
    }
    const routing = await routingOptions(o);
    const cc: ControlContext = { home: ctx.home, profile, progress: (s) => ctx.progress(s) };
    const remember = () => {
      // `--dwn-listen` is remembered for later `up`s of the network this machine hosts
      const j = readJoinedNetwork(profile.dir);
      if (!j) return;
      const next = { ...j, ...(o.dwnListen && j.embedded ? { dwnListen: o.dwnListen } : {}), ...(o.hostname ? { hostname: o.hostname } : {}) };
      if (JSON.stringify(next) !== JSON.stringify(j)) writeJoinedNetwork(profile.dir, next);
    };
    const relay =
      o.relay === undefined || o.relay === false
        ? undefined
        : { ...parseListen(o.relay === true ? '0.0.0.0:3340' : o.relay, 3340), stunPort: parsePort(o.relayStunPort ?? '3478', 'STUN port'), ...(o.relayUrl ? { url: o.relayUrl } : {}), ...(o.relayInsecureHttp ? { insecureHttp: true } : {}) };

    if (o.foreground) {
      const [{ runDaemon }, { MeshAgent }, { createDaemonLogger }] = await Promise.all([
        import('../../daemon/daemon.js'),
        import('../../daemon/agent.js'),
        import('../../daemon/log.js'),
      ]);
      // started early by a background `up`: wait while it creates or joins the network
      if (!(await waitForRelease())) return;
      await prepareNetwork(ctx, cc, o);
      remember();
      const log = createDaemonLogger({ file: logPath(ctx.home), stderr: process.env.MESHD_BACKGROUND !== '1', debug: process.env.MESHD_DEBUG === '1' });
      try {
        const agent = new MeshAgent({
          ctx: cc,
          log,
          tunName: o.tun ?? 'meshd0',
          ...(relay ? { relay } : {}),
          ...(o.dwnListen ? { dwnListen: o.dwnListen } : {}),
          ...(o.acceptDns !== undefined ? { acceptDns: o.acceptDns } : {}),
          ...(routing ? { routing } : {}),
        });
        const metricsListen = o.metricsListen !== undefined ? (await import('../../daemon/metrics.js')).parseMetricsListen(o.metricsListen) : undefined;
        const handle = await runDaemon({ home: ctx.home, log, agent, metricsListen });
        if (process.env.MESHD_BACKGROUND !== '1') ctx.progress(summarizeUp(agent.status()));
        await handle.stopped;
      } finally {
        await log.close();
      }
      return;
    }

    const args = ['up', '--foreground', '--home', ctx.home, '--profile', profile.name, '--tun', o.tun ?? 'meshd0'];
    if (relay) args.push('--relay', joinHostPort(relay.host, relay.port), '--relay-stun-port', String(relay.stunPort));
    if (relay?.url) args.push('--relay-url', relay.url);
    if (relay?.insecureHttp) args.push('--relay-insecure-http');
    if (o.dwnListen) args.push('--dwn-listen', o.dwnListen);
    if (o.acceptDns !== undefined) args.push(o.acceptDns ? '--accept-dns' : '--no-accept-dns');
    if (o.metricsListen) args.push('--metrics-listen', (await import('../../daemon/metrics.js')).parseMetricsListen(o.metricsListen).text);
    args.push(...routingArgs(routing));
    // The daemon process starts now and loads its modules while this one creates or joins the
    // network (they are each about half a second of `meshd up`); it waits to be released.
    const daemon = spawnHeldDaemon(ctx.home, args);
    try {
      await prepareNetwork(ctx, cc, o);
      remember();
    } catch (e) {
      daemon.abort();
      throw e;
    }
    ctx.progress('Starting the meshd daemon…');
    await daemon.release({ timeoutMs: Number(o.timeout ?? 60) * 1000, onProgress: (s) => ctx.progress(s) });
    // the live status: which peers answer now (a moment more when some do not)
    const s = await callDaemon<AgentStatus & { state: string; pid: number }>(ctx.home, 'GET', '/v0/status/live');
    ctx.print(s, () => summarizeUp(s));
  });

  const down = subcommand(program, 'down', 'stop the mesh agent; the tunnel device and routes are removed');
  action(down, io, async (ctx) => {
    const { stopRunningDaemon } = await import('../../daemon/stop.js');
    const pid = await stopRunningDaemon(ctx.home);
    // a daemon that was killed cannot restore the host's DNS itself: do it here
    const { restoreLeftovers } = await import('../../dns/mesh-dns.js');
    let dns: ReturnType<typeof restoreLeftovers> = 'nothing';
    try {
      dns = restoreLeftovers(join(ctx.home, 'dns'));
    } catch (e) {
      ctx.progress(`Could not restore /etc/resolv.conf: ${(e as Error).message}. Run \`sudo meshd down\`.`);
    }
    if (dns === 'restored') ctx.progress('Restored /etc/resolv.conf (left by a meshd that did not stop cleanly).');
    if (pid === null) {
      // a daemon that was killed left its routes and firewall rules: undo them now
      const { undoLeftoverRouting } = await import('../../daemon/routing/os-routing.js');
      const undone = await undoLeftoverRouting(ctx.home);
      ctx.print(
        { stopped: false, running: false, ...(dns !== 'nothing' ? { dns } : {}), ...(undone > 0 ? { routingStepsUndone: undone } : {}) },
        undone > 0 ? `meshd is not running; undid ${undone} routing change(s) it left behind.` : 'meshd is not running.',
      );
    }
    else ctx.print({ stopped: true, pid }, 'meshd stopped.');
  });
}

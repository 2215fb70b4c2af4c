/**
 * `meshd up` and `meshd down`: start the agent (creating or joining a network first when
 * asked), in the background by default, returning once the tunnel is up and the first network
 * map is applied; stop it, leaving no device, route or socket behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { initProfile, type Profile } from '../../identity/profile.js';
import { ensurePrivateDir } from '../../identity/state-files.js';
import { freeMeshPrefix, ipv4PrefixesOverlap, joinedSlots, primarySlot, selectSlot, slotFor, type JoinedSlot, type NetworkSlot } from '../../control/network-slots.js';
import { allTargets, networkTarget } from './network-target.js';
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

/**
 * Create or join the network `up` was asked for (or check there is one to start); resolves with
 * its id, or undefined when the context's network (its only one) is to be started.
 */
async function prepareNetwork(ctx: CommandContext, cc: ControlContext, o: UpOptions): Promise<string | undefined> {
  if (o.invite !== undefined) {
    if (o.create !== undefined || o.anchor || o.network) throw new UsageError('an invite cannot be combined with --create, --anchor or --network');
    const { parseInvite, requestJoinByInvite } = await import('../../control/invite-ops.js');
    const inv = parseInvite(o.invite);
    if (readJoinedNetwork(slotFor(cc.home, cc.profile, inv.networkId).stateDir)?.networkId === inv.networkId) return inv.networkId; // joined before: just start
    await requestJoinByInvite(cc, inv, { timeoutMs: Number(o.wait ?? 600) * 1000 });
    const { joinNetwork } = await import('../../control/network-ops.js');
    const r = await joinNetwork(cc, { anchor: inv.anchor, networkId: inv.networkId, endpoint: inv.endpoint });
    ctx.progress(`Joined network "${r.name}". Mesh IP: ${r.meshIP ?? '?'}`);
    return r.networkId;
  }
  if (o.create !== undefined) {
    if (o.anchor || o.network) throw new UsageError('--create cannot be combined with --anchor/--network');
    const { createNetwork } = await import('../../control/network-ops.js');
    const r = await createNetwork(cc, { name: o.create, ...(o.endpoint ? { endpoint: o.endpoint } : {}), ...(o.cidr ? { cidr: o.cidr } : {}) });
    ctx.progress(`Network "${r.name}" created. Mesh IP: ${r.meshIP ?? '?'}`);
    ctx.progress(`Network id: ${r.networkId}`);
    if (r.embedded) {
      const { reachableEndpoint } = await import('../../control/invite-ops.js');
      const joined = readJoinedNetwork(slotFor(cc.home, cc.profile, r.networkId).stateDir);
      if (joined) ctx.progress(`This machine hosts the network's DWN; other machines reach it at ${reachableEndpoint(joined, undefined)}`);
    }
    ctx.progress('To add another machine: meshd invite   (it prints the one line to run there)');
    return r.networkId;
  }
  if (o.anchor) {
    if (!o.network) throw new UsageError('--anchor and --network go together');
    if (readJoinedNetwork(slotFor(cc.home, cc.profile, o.network).stateDir)?.networkId === o.network) return o.network; // already joined: just start
    const { joinNetwork } = await import('../../control/network-ops.js');
    const r = await joinNetwork(cc, { anchor: o.anchor, networkId: o.network, ...(o.endpoint ? { endpoint: o.endpoint } : {}) });
    ctx.progress(`Joined network "${r.name}". Mesh IP: ${r.meshIP ?? '?'}`);
    return r.networkId;
  }
  const joined = readJoinedNetwork(cc.stateDir ?? cc.profile.dir);
  if (!joined) {
    throw new MeshdError('E_NO_NETWORK', 'this device is in no network yet', {
      hint: 'run `meshd up --create NAME`, or `meshd up --anchor DID --network ID --endpoint URL` once the owner has added you',
    });
  }
  return joined.networkId;
}

/**
 * `up --create` with a prefix that overlaps a network running on this host — this identity's
 * (its daemon) or any other tunnel's (another home's network, another VPN): say so before
 * anything is written (the two could not run side by side).
 */
async function refuseCreateOverRunning(home: string, profile: Profile, cidr: string): Promise<void> {
  const slots = joinedSlots(home, profile);
  const { otherTuns, tunPrefixClash } = await import('../../daemon/host-tuns.js');
  const taken = [...slots.flatMap((x) => (x.meshCIDR !== null ? [x.meshCIDR] : [])), ...otherTuns('').flatMap((t) => t.prefixes.filter((p) => !p.includes(':')))];
  const hint = `create it with another prefix: meshd up --create NAME --cidr ${freeMeshPrefix(taken)}`;
  for (const s of slots) {
    const pid = runningDaemonPid(s.runDir);
    if (pid === null || s.meshCIDR === null || !ipv4PrefixesOverlap(cidr, s.meshCIDR)) continue;
    throw new MeshdError('E_DAEMON_RUNNING', `meshd is already running for ${home} (pid ${pid}) in network ${s.joined.networkId} ("${s.name ?? '?'}", mesh prefix ${s.meshCIDR}), which the new network's prefix ${cidr} overlaps`, { hint });
  }
  const clash = tunPrefixClash('', cidr);
  if (clash) throw new MeshdError('E_CONFIG_INVALID', `the new network's mesh prefix ${cidr} overlaps ${clash.prefix} on ${clash.dev}, another network on this host`, { hint });
}

export function registerDaemon(program: Command, io: Io): void {
  const up = subcommand(program, 'up [invite]', 'start the mesh agent (joining with an invite, or creating or joining a network first)')
    .option('--create <name>', 'create a network first (this device becomes its owner)')
    .option('--endpoint <url>', 'DWN endpoint URL (default: the embedded DWN)')
    .option('--anchor <did>', "join: the network owner's DID (with --network ID)")
    .option('--cidr <cidr>', 'with --create: IPv4 mesh prefix (default 10.200.0.0/16)')
    .option('--relay [addr]', 'also run a relay (DERP + STUN) here, on ADDR[:PORT] (default 0.0.0.0:3340)')
    .option('--relay-stun-port <port>', 'UDP port of the relay STUN responder', '3478')
    .option('--relay-url <url>', 'with --relay: the URL other nodes reach it at (default https://ADDR:PORT/derp)')
    .option('--relay-insecure-http', 'with --relay: serve plain HTTP instead of HTTPS (tests and labs only)')
    .option('--dwn-listen <addr>', 'address the embedded DWN listens on (default 0.0.0.0: other machines reach it; remembered)')
    .option('--tun <name>', 'tunnel device name (default: the first free of meshd0, meshd1, …)')
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
    // --network is a global option (commander hands it to the root command): take it from the context
    const o: UpOptions = { ...up.opts<UpOptions>(), ...(ctx.network !== undefined ? { network: ctx.network } : {}), ...(invite !== undefined ? { invite } : {}) };
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
    // a daemon started by a background `up` waits here while that one creates or joins the network
    const foreground = o.foreground
      ? await Promise.all([import('../../daemon/daemon.js'), import('../../daemon/agent.js'), import('../../daemon/log.js')])
      : undefined;
    if (foreground && !(await waitForRelease())) return;
    if (o.network !== undefined && o.anchor === undefined && o.create !== undefined) throw new UsageError('--create cannot be combined with --anchor/--network');
    // the network to start: joined or to be joined by id, chosen with --network, or the only one
    const wanted = o.invite !== undefined ? (await import('../../control/invite-ops.js')).parseInvite(o.invite).networkId : o.anchor !== undefined ? o.network : undefined;
    let slot: NetworkSlot | undefined;
    if (wanted !== undefined) slot = slotFor(ctx.home, profile, wanted);
    else if (o.create === undefined) slot = selectSlot(ctx.home, profile, o.network);
    else if (joinedSlots(ctx.home, profile).length === 0) slot = primarySlot(ctx.home, profile);
    if (o.create !== undefined) await refuseCreateOverRunning(ctx.home, profile, o.cidr ?? '10.200.0.0/16');
    const pid = slot ? runningDaemonPid(slot.runDir) : null;
    if (slot && pid !== null) {
      // already up: say so and succeed
      const runDir = slot.runDir;
      const joined = readJoinedNetwork(slot.stateDir);
      if (o.create !== undefined) {
        throw new MeshdError('E_DAEMON_RUNNING', `meshd is already running for ${ctx.home} (pid ${pid}) in network ${joined?.networkId ?? '?'}`, {
          hint: 'run `meshd down` first to create or join another network',
        });
      }
      if (o.hostname !== undefined && joined && o.hostname !== joined.hostname) {
        // a new name for the running daemon: remembered, and published at once
        writeJoinedNetwork(slot.stateDir, { ...joined, hostname: o.hostname });
        await callDaemon(runDir, 'POST', '/v0/hostname', { as: profile.did, hostname: o.hostname });
        ctx.progress(`Renamed this device to "${o.hostname}".`);
      }
      if (o.acceptDns !== undefined) ctx.progress('--accept-dns takes effect with the next `meshd up` (after `meshd down`).');
      const s = await callDaemon<AgentStatus & { state: string; pid: number }>(runDir, 'GET', '/v0/status/live');
      if (o.advertiseRoutes !== undefined || o.advertiseExitNode || o.exitNode !== undefined) {
        ctx.progress('Route and exit node options take effect when meshd starts: run `meshd down`, then `meshd up` with them.');
      }
      ctx.print({ ...s, already: true }, () => `meshd is already up (pid ${pid}).\n${summarizeUp(s)}`);
      return;
    }
    const routing = await routingOptions(o);
    const contextFor = (sl: NetworkSlot | undefined): ControlContext => ({
      home: ctx.home,
      profile,
      progress: (line) => ctx.progress(line),
      ...(sl && !sl.primary ? { stateDir: sl.stateDir } : {}),
    });
    const remember = (sl: NetworkSlot) => {
      // `--dwn-listen` is remembered for later `up`s of the network this machine hosts
      const j = readJoinedNetwork(sl.stateDir);
      if (!j) return;
      const next = { ...j, ...(o.dwnListen && j.embedded ? { dwnListen: o.dwnListen } : {}), ...(o.hostname ? { hostname: o.hostname } : {}) };
      if (JSON.stringify(next) !== JSON.stringify(j)) writeJoinedNetwork(sl.stateDir, next);
    };
    const relay =
      o.relay === undefined || o.relay === false
        ? undefined
        : { ...parseListen(o.relay === true ? '0.0.0.0:3340' : o.relay, 3340), stunPort: parsePort(o.relayStunPort ?? '3478', 'STUN port'), ...(o.relayUrl ? { url: o.relayUrl } : {}), ...(o.relayInsecureHttp ? { insecureHttp: true } : {}) };

    if (foreground) {
      const [{ runDaemon }, { MeshAgent }, { createDaemonLogger }] = foreground;
      const id = await prepareNetwork(ctx, contextFor(slot), o);
      const sl = id !== undefined ? slotFor(ctx.home, profile, id) : (slot ?? primarySlot(ctx.home, profile));
      remember(sl);
      ensurePrivateDir(sl.runDir);
      const log = createDaemonLogger({ file: logPath(sl.runDir), stderr: process.env.MESHD_BACKGROUND !== '1', debug: process.env.MESHD_DEBUG === '1' });
      try {
        const agent = new MeshAgent({
          ctx: contextFor(sl),
          log,
          runDir: sl.runDir,
          ...(o.tun !== undefined ? { tunName: o.tun } : {}),
          ...(relay ? { relay } : {}),
          ...(o.dwnListen ? { dwnListen: o.dwnListen } : {}),
          ...(o.acceptDns !== undefined ? { acceptDns: o.acceptDns } : {}),
          ...(routing ? { routing } : {}),
        });
        const metricsListen = o.metricsListen !== undefined ? (await import('../../daemon/metrics.js')).parseMetricsListen(o.metricsListen) : undefined;
        const handle = await runDaemon({ home: sl.runDir, log, agent, metricsListen });
        if (process.env.MESHD_BACKGROUND !== '1') ctx.progress(summarizeUp(agent.status()));
        await handle.stopped;
      } finally {
        await log.close();
      }
      return;
    }

    const args = ['up', '--foreground', '--home', ctx.home, '--profile', profile.name];
    if (o.tun !== undefined) args.push('--tun', o.tun);
    if (relay) args.push('--relay', joinHostPort(relay.host, relay.port), '--relay-stun-port', String(relay.stunPort));
    if (relay?.url) args.push('--relay-url', relay.url);
    if (relay?.insecureHttp) args.push('--relay-insecure-http');
    if (o.dwnListen) args.push('--dwn-listen', o.dwnListen);
    if (o.acceptDns !== undefined) args.push(o.acceptDns ? '--accept-dns' : '--no-accept-dns');
    if (o.metricsListen) args.push('--metrics-listen', (await import('../../daemon/metrics.js')).parseMetricsListen(o.metricsListen).text);
    args.push(...routingArgs(routing));
    const spawnFor = (sl: NetworkSlot, networkId: string | undefined) => {
      ensurePrivateDir(sl.runDir);
      return spawnHeldDaemon(sl.runDir, [...args, ...(networkId !== undefined ? ['--network', networkId] : [])]);
    };
    let daemon: ReturnType<typeof spawnHeldDaemon> | undefined;
    let sl: NetworkSlot;
    if (slot) {
      // The daemon process starts now and loads its modules while this one creates or joins the
      // network (they are each about half a second of `meshd up`); it waits to be released.
      daemon = spawnFor(slot, wanted ?? readJoinedNetwork(slot.stateDir)?.networkId);
      try {
        await prepareNetwork(ctx, contextFor(slot), o);
        remember(slot);
      } catch (e) {
        daemon.abort();
        throw e;
      }
      sl = slot;
    } else {
      // a network created next to others: its slot is known once it exists
      const id = await prepareNetwork(ctx, contextFor(undefined), o);
      sl = slotFor(ctx.home, profile, id!);
      remember(sl);
      daemon = spawnFor(sl, id);
    }
    ctx.progress('Starting the meshd daemon…');
    await daemon.release({ timeoutMs: Number(o.timeout ?? 60) * 1000, onProgress: (line) => ctx.progress(line) });
    // the live status: which peers answer now (a moment more when some do not)
    const s = await callDaemon<AgentStatus & { state: string; pid: number }>(sl.runDir, 'GET', '/v0/status/live');
    ctx.print(s, () => summarizeUp(s));
  });

  const down = subcommand(program, 'down', 'stop the mesh agent (of every network, or of --network NAME|ID); the tunnel device and routes are removed');
  action(down, io, async (ctx) => {
    let targets: Array<{ runDir: string; slot?: JoinedSlot | NetworkSlot }>;
    try {
      targets = ctx.network !== undefined ? [networkTarget(ctx)] : allTargets(ctx);
    } catch (e) {
      // no identity (yet, or any more): whatever ran from the home itself
      if (!(e instanceof MeshdError && e.code === 'E_NO_IDENTITY' && ctx.network === undefined)) throw e;
      targets = [{ runDir: ctx.home }];
    }
    if (targets.length === 1) {
      const r = await stopNetwork(ctx, targets[0]!.runDir);
      ctx.print(r.data, r.text);
      return;
    }
    const results = [];
    for (const t of targets) {
      const r = await stopNetwork(ctx, t.runDir);
      const j = t.slot && 'joined' in t.slot ? t.slot : undefined;
      results.push({ network: j?.joined.networkId ?? null, name: j?.name ?? null, ...r.data, text: `${j ? `"${j.name ?? '?'}" ${j.joined.networkId}` : t.runDir}: ${r.text}` });
    }
    ctx.print({ networks: results.map(({ text: _t, ...rest }) => rest) }, results.map((r) => r.text).join('\n'));
  });
}

/** Stop the daemon of one network (by its directory), undoing what a killed one left. */
async function stopNetwork(ctx: CommandContext, runDir: string): Promise<{ data: Record<string, unknown>; text: string }> {
  const { stopRunningDaemon } = await import('../../daemon/stop.js');
  const pid = await stopRunningDaemon(runDir);
  // a daemon that was killed cannot restore the host's DNS itself: do it here
  const { restoreLeftovers } = await import('../../dns/mesh-dns.js');
  let dns: ReturnType<typeof restoreLeftovers> = 'nothing';
  try {
    dns = restoreLeftovers(join(runDir, 'dns'));
  } catch (e) {
    ctx.progress(`Could not restore /etc/resolv.conf: ${(e as Error).message}. Run \`sudo meshd down\`.`);
  }
  if (dns === 'restored') ctx.progress('Restored /etc/resolv.conf (left by a meshd that did not stop cleanly).');
  if (pid !== null) return { data: { stopped: true, pid }, text: 'meshd stopped.' };
  // a daemon that was killed left its routes and firewall rules: undo them now
  const { undoLeftoverRouting } = await import('../../daemon/routing/os-routing.js');
  const undone = await undoLeftoverRouting(runDir);
  return {
    data: { stopped: false, running: false, ...(dns !== 'nothing' ? { dns } : {}), ...(undone > 0 ? { routingStepsUndone: undone } : {}) },
    text: undone > 0 ? `meshd is not running; undid ${undone} routing change(s) it left behind.` : 'meshd is not running.',
  };
}

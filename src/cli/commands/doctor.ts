/**
 * `meshd doctor [--json]`: read-only checks of everything meshd depends on — identity and file
 * modes, network membership and key epoch, the daemon, DWN reachability and latency, the live
 * subscription, the tunnel device and routes, UDP and the NAT, relays, clock skew, and clashes
 * with other VPNs. One line a check (ok / info / warn / fail) with what to do; exit 1 when any
 * check fails.
 */
import type { Command } from 'commander';
import { MeshdError } from '../../errors.js';
import type { AgentStatus } from '../../daemon/agent-types.js';
import type { NetworkMap } from '../../control/netmap.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { deviceState, loosePermissions, probeHttp, result, routeDevice, vpnClashes, type CheckResult } from './doctor-checks.js';

/** Clock skew against the DWN beyond which records look future-dated or stale to others. */
const SKEW_WARN_MS = 10_000;
const SKEW_FAIL_MS = 120_000;

type DaemonView = AgentStatus & { state: string; pid: number; error?: string };

async function identityChecks(ctx: CommandContext, out: CheckResult[]): Promise<{ dir: string } | null> {
  const { openProfile } = await import('../../identity/profile.js');
  let profile;
  try {
    profile = openProfile(ctx.home, ctx.profile);
  } catch (e) {
    out.push(result('identity', 'fail', (e as Error).message, (e as MeshdError).hint ?? 'run `meshd init`'));
    return null;
  }
  const loose = loosePermissions(ctx.home, profile.dir);
  if (loose.length > 0) out.push(result('identity', 'fail', `private key files are readable by others: ${loose.join('; ')}`, `chmod -R go-rwx ${ctx.home}`));
  else out.push(result('identity', 'ok', `${profile.did.slice(0, 40)}… (profile "${profile.name}"), key files private`));
  const { networkTarget } = await import('./network-target.js');
  return { dir: networkTarget(ctx, profile).slot.stateDir };
}

async function daemonView(ctx: CommandContext, out: CheckResult[]): Promise<DaemonView | null> {
  const [{ runningDaemonPid }, { callDaemon }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js')]);
  const { daemonDir } = await import('./network-target.js');
  const runDir = daemonDir(ctx);
  const pid = runningDaemonPid(runDir);
  if (pid === null) {
    out.push(result('daemon', 'fail', 'meshd is not running', 'start it with `meshd up` (`meshd logs` shows why it stopped)'));
    return null;
  }
  try {
    const s = await callDaemon<DaemonView>(runDir, 'GET', '/v0/status', undefined, 5000);
    if (s.state !== 'running') {
      out.push(result('daemon', 'fail', `meshd (pid ${pid}) is ${s.state}${s.error ? `: ${s.error}` : ''}`, '`meshd logs --since 10m`'));
      return null;
    }
    out.push(result('daemon', 'ok', `running (pid ${pid})`));
    return s;
  } catch (e) {
    out.push(result('daemon', 'fail', `meshd (pid ${pid}) does not answer: ${(e as Error).message}`, '`meshd logs --since 10m`; `meshd down && meshd up` restarts it'));
    return null;
  }
}

async function runChecks(ctx: CommandContext): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const id = await identityChecks(ctx, out);

  // network membership
  const { readJoinedNetwork, readCachedMap } = await import('../../control/local-state.js');
  const joined = id ? readJoinedNetwork(id.dir) : undefined;
  let map: NetworkMap | undefined;
  if (!joined) {
    out.push(result('network', 'fail', 'this device is in no network', 'run `meshd up --create NAME`, or `meshd up INVITE` with an invite from the owner'));
  } else if (joined.removedAt) {
    out.push(result('network', 'fail', `this device was removed from network ${joined.networkId} (${joined.removedAt})`, 'ask the owner for a new invite; `meshd network leave --force` first'));
  } else {
    try {
      map = readCachedMap(id!.dir, joined.networkId);
    } catch (e) {
      out.push(result('network', 'warn', (e as Error).message, (e as MeshdError).hint));
    }
  }

  const d = await daemonView(ctx, out);
  if (joined && !joined.removedAt) {
    const n = d?.network;
    if (d?.control?.revoked) out.push(result('network', 'fail', `removed from network ${joined.networkId} by its owner`, 'run `meshd down`, then ask the owner for a new invite'));
    else if (n) out.push(result('network', 'ok', `"${n.name}" ${n.id}, key epoch ${n.epoch}, ${d.peers.length} peer(s), ${d.peers.filter((p) => p.online).length} online`));
    else if (map) out.push(result('network', 'info', `"${map.network.name}" ${map.networkId}, key epoch ${map.epoch} (last map seen; the daemon is not running)`));
  }

  // DWN reachability, latency and clock skew
  if (joined) {
    const r = await probeHttp(joined.endpoint, 3000);
    if (!r.ok) {
      out.push(result('dwn', 'fail', `DWN ${joined.endpoint} unreachable: ${r.error}`, joined.embedded ? "it runs inside this machine's meshd: `meshd logs --since 10m`" : "check the DWN host (on the owner's machine: `meshd status`) and the way there (firewall, address)"));
      out.push(result('time', 'info', 'clock not compared (the DWN did not answer)'));
    } else {
      out.push(result('dwn', r.ms > 1000 ? 'warn' : 'ok', `DWN ${joined.endpoint} answered in ${r.ms} ms`, r.ms > 1000 ? 'a slow DWN delays every change; check the way to it' : undefined));
      if (r.serverTime === null) out.push(result('time', 'info', 'the DWN sent no Date header: clock not compared'));
      else {
        const skew = Date.now() - r.serverTime;
        const abs = Math.abs(skew);
        const text = `this clock is ${(abs / 1000).toFixed(1)} s ${skew > 0 ? 'ahead of' : 'behind'} the DWN's`;
        if (abs > SKEW_FAIL_MS) out.push(result('time', 'fail', text, 'records it writes look future-dated or stale to the others: enable time sync (`timedatectl set-ntp true`)'));
        else if (abs > SKEW_WARN_MS) out.push(result('time', 'warn', text, 'enable time sync (`timedatectl set-ntp true`)'));
        else out.push(result('time', 'ok', `clock within ${Math.max(1, Math.ceil(abs / 1000))} s of the DWN's`));
      }
    }
  }

  // live subscription and the records it brings
  if (d?.control) {
    const c = d.control;
    if (c.connected) out.push(result('subscription', 'ok', `live updates from the DWN; ${c.refreshes} map refresh(es), last ${c.lastRefreshAt ?? 'never'}`));
    else out.push(result('subscription', 'fail', `no live updates from the DWN (running on the last map)${c.lastError ? `: ${c.lastError}` : ''}`, 'it reconnects by itself once the DWN is reachable; `meshd logs -f` shows it'));
    const skipped = Object.entries(c.skipped).filter(([, v]) => v > 0);
    if (skipped.length > 0) out.push(result('records', 'info', `records skipped: ${skipped.map(([k, v]) => `${k} ${v}`).join(', ')}`));
  }

  // tunnel device and routes
  const tun = d?.dataplane?.tunName ?? 'meshd0';
  if (d?.dataplane) {
    const dev = await deviceState(tun);
    const want = [d.identity.meshIP, d.identity.meshIP6].filter((a): a is string => a !== null);
    if (dev === null) out.push(result('tun', 'fail', `tunnel device ${tun} is gone`, 'restart meshd: `meshd down && meshd up` (something outside meshd deleted it)'));
    else if (!dev.up) out.push(result('tun', 'fail', `tunnel device ${tun} is down`, `ip link set ${tun} up, or restart meshd`));
    else if (!want.every((a) => dev.addresses.includes(a))) out.push(result('tun', 'fail', `${tun} lacks its mesh address (${want.join(', ')}); it has ${dev.addresses.join(', ') || 'none'}`, 'restart meshd: `meshd down && meshd up`'));
    else out.push(result('tun', 'ok', `${tun} up with ${want.join(', ')}`));
    if (dev !== null) {
      const peer = d.peers[0];
      if (peer) {
        const via = await routeDevice(peer.meshIP);
        if (via !== tun) out.push(result('routes', 'fail', `traffic to ${peer.meshIP} goes ${via ? `through ${via}` : 'nowhere'}, not ${tun}`, `\`ip route get ${peer.meshIP}\`; remove the route that takes it, or restart meshd`));
        else out.push(result('routes', 'ok', `mesh traffic routed through ${tun}`));
      }
    }
  }

  // UDP, NAT and relays: a fresh STUN round from here, and the daemon's relay connections
  const relays = (map?.relays ?? []).filter((r) => !r.stunOnly || r.stunPort);
  if (relays.length > 0) {
    const { netcheckStandalone } = await import('../../engine/magicsock/netcheck.js');
    ctx.progress('checking UDP and the NAT through the relays\' STUN servers…');
    const nc = await netcheckStandalone({ relays: relays.map((r) => ({ url: r.url, stunPort: r.stunPort })), timeoutMs: 2500, relayPing: false });
    const anyRelayUp = (d?.dataplane?.relays ?? []).some((r) => r.state === 'connected');
    if (nc.udp === false) {
      out.push(result('udp', anyRelayUp ? 'warn' : 'fail', `UDP is blocked: no STUN server answered (${nc.stun.map((s) => s.server).join(', ')})`, anyRelayUp ? 'peers are reached only through the relay (slower): allow outgoing UDP' : 'allow outgoing UDP; with no relay connected peers cannot be reached'));
    } else if (nc.udp === true) {
      out.push(result('udp', 'ok', `UDP works; public address ${nc.publicEndpoints.join(', ') || '?'}`));
      out.push(result('nat', 'info', nc.mapping === 'endpoint-dependent' ? 'NAT mapping varies by destination (symmetric): direct paths only to peers with a public or cone-NAT address; the rest go through the relay' : `NAT mapping: ${nc.mapping}`));
    }
  } else {
    out.push(result('udp', 'info', 'no relay with a STUN server in the network: UDP and NAT not checked (`meshd netcheck --stun IP:PORT`)'));
  }
  for (const r of d?.dataplane?.relays ?? []) {
    if (r.state === 'connected') out.push(result('relay', 'ok', `${r.url} connected${r.home ? ' (home)' : ''}`));
    else if (r.home) out.push(result('relay', 'fail', `home relay ${r.url} is ${r.state}${r.lastError ? `: ${r.lastError}` : ''}`, 'peers behind NATs cannot reach this device without it: check the way to it (`meshd netcheck`)'));
  }

  out.push(...(await vpnClashes(tun, map ? [map.network.meshCIDR, map.network.meshCIDR6] : ['10.200.0.0/16'])));
  return out;
}

function formatChecks(checks: CheckResult[]): string {
  const lines = checks.map((c) => `${c.status.padEnd(4)}  ${c.check.padEnd(12)} ${c.message}${c.fix && (c.status === 'warn' || c.status === 'fail') ? `\n${' '.repeat(19)}→ ${c.fix}` : ''}`);
  const count = (s: string) => checks.filter((c) => c.status === s).length;
  lines.push('', `${checks.length} checks: ${count('ok')} ok, ${count('info')} info, ${count('warn')} warn, ${count('fail')} fail`);
  return lines.join('\n');
}

export function registerDoctor(program: Command, io: Io): void {
  action(subcommand(program, 'doctor', 'check everything meshd depends on, read-only; exit 1 when something fails'), io, async (ctx) => {
    const checks = await runChecks(ctx);
    ctx.print({ checks, ok: !checks.some((c) => c.status === 'fail') }, () => formatChecks(checks));
    const failed = checks.filter((c) => c.status === 'fail');
    if (failed.length > 0) throw new MeshdError('E_CHECK_FAILED', `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${[...new Set(failed.map((c) => c.check))].join(', ')}`);
  });
}

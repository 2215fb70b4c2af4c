/**
 * `meshd network create|join|leave`. Parsing and printing only; the work is in
 * src/control/network-ops.ts (loaded on use: the DWN SDK is heavy).
 */
import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { identityContext, networkTarget } from './network-target.js';
import { UsageError } from '../../errors.js';
import type { ControlContext } from '../../control/session.js';
import type { NetworkResult } from '../../control/network-ops.js';

/** The control-plane context of a command: home, identity, the chosen network, progress on stderr. */
export function controlContext(ctx: CommandContext): ControlContext {
  return networkTarget(ctx).cc;
}

export function parsePort(s: string, what = 'port'): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw new UsageError(`invalid ${what} "${s}"`);
  return Number(s);
}

function describe(r: NetworkResult, verb: string): string {
  const lines = [
    `${verb} network "${r.name}".`,
    `Network id: ${r.networkId}`,
    `Owner: ${r.anchor}`,
    `DWN: ${r.endpoint}${r.embedded ? ' (embedded)' : ''}`,
  ];
  if (r.meshIP) lines.push(`Mesh IP: ${r.meshIP} (${r.meshIP6})`);
  if (r.roles.includes('owner')) lines.push('To add a peer: meshd peer add <their-did>');
  else if (r.roles.includes('member') && !r.roles.includes('node')) lines.push('To add one of your devices: meshd peer add <device-did> (the owner approves it)');
  return lines.join('\n');
}

export function registerNetwork(program: Command, io: Io): void {
  const network = subcommand(program, 'network', 'create, join or leave a mesh network');

  const create = subcommand(network, 'create <name>', 'create a network on a DWN (the embedded one without --endpoint)')
    .option('--endpoint <url>', 'DWN endpoint URL')
    .option('--cidr <cidr>', 'IPv4 mesh prefix', '10.200.0.0/16')
    .option('--listen-port <port>', 'WireGuard UDP port for the network');
  action(create, io, async (ctx, name: string) => {
    const o = create.opts<{ endpoint?: string; cidr: string; listenPort?: string }>();
    const { createNetwork } = await import('../../control/network-ops.js');
    const r = await createNetwork(identityContext(ctx), {
      name,
      cidr: o.cidr,
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
      ...(o.listenPort !== undefined ? { listenPort: parsePort(o.listenPort, 'listen port') } : {}),
    });
    ctx.print(r, () => describe(r, 'Created'));
  });

  const join = subcommand(network, 'join', 'join a network this device was added to')
    .requiredOption('--anchor <did>', "the network owner's DID")
    .option('--endpoint <url>', 'DWN endpoint URL (default: from the owner DID)');
  join.description('join a network this device was added to: --anchor DID --network ID');
  action(join, io, async (ctx) => {
    const o = { ...join.opts<{ anchor: string; endpoint?: string }>(), network: ctx.network };
    if (o.network === undefined) throw new UsageError('network join needs --network ID (the network id)');
    const { joinNetwork } = await import('../../control/network-ops.js');
    const r = await joinNetwork(identityContext(ctx), {
      anchor: o.anchor,
      networkId: o.network,
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    });
    ctx.print(r, () => describe(r, 'Joined'));
  });

  const policy = subcommand(network, 'policy', 'what members may do without the owner (owner)').requiredOption(
    '--member-devices <n>',
    "how many devices each member may bring with `meshd invite` before the owner must approve them (0: always approve)",
  );
  action(policy, io, async (ctx) => {
    const o = policy.opts<{ memberDevices: string }>();
    if (!/^\d{1,4}$/.test(o.memberDevices) || Number(o.memberDevices) > 1000) throw new UsageError(`--member-devices "${o.memberDevices}" is not a number from 0 to 1000`);
    const { setMemberDevicesPolicy } = await import('../../control/invite-ops.js');
    const r = await setMemberDevicesPolicy(controlContext(ctx), Number(o.memberDevices));
    ctx.print(r, () =>
      r.memberDevices === 0
        ? "Members' devices now always wait for your approval (`meshd peer approve DID`)."
        : `Each member may now bring up to ${r.memberDevices} device${r.memberDevices === 1 ? '' : 's'} with \`meshd invite\`; more wait for \`meshd peer approve\`.`,
    );
  });

  const leave = subcommand(network, 'leave', "stop meshd, remove this device's own records and forget the network")
    .option('--force', 'forget the network even when the DWN cannot be reached')
    .option('-y, --yes', 'the owner leaves without being asked');
  action(leave, io, async (ctx) => {
    const o = leave.opts<{ force?: boolean; yes?: boolean }>();
    const { cc, slot, runDir } = networkTarget(ctx);
    const [{ readJoinedNetwork }, { leaveNetwork }] = await Promise.all([import('../../control/local-state.js'), import('../../control/network-ops.js')]);
    const joined = readJoinedNetwork(slot.stateDir);
    if (joined?.roles.includes('owner') && !o.yes) {
      throw new UsageError(`this device owns network ${joined.networkId}: once it leaves, nobody can add or remove devices in it`, {
        hint: 'add --yes if that is what you want',
      });
    }
    const { stopRunningDaemon } = await import('../../daemon/stop.js');
    const stopped = await stopRunningDaemon(runDir);
    if (stopped !== null) ctx.progress(`stopped meshd (pid ${stopped}) first`);
    const r = await leaveNetwork(cc, { force: Boolean(o.force) });
    // a network's own slot goes with it (the primary slot is the profile directory and home)
    if (!slot.primary) rmSync(slot.stateDir, { recursive: true, force: true });
    ctx.print(r, () =>
      [`Left network ${r.networkId} (${r.deleted} record${r.deleted === 1 ? '' : 's'} removed).`, ...(r.warning ? [`Warning: ${r.warning}`] : [])].join('\n'),
    );
  });

  const dns = subcommand(network, 'dns', "show or set the network's DNS suffix and name servers (the owner sets them)")
    .option('--suffix <domain>', 'names become <hostname>.<domain> (default <network>.internal)')
    .option('--no-suffix', 'remove the suffix: peers use <network>.internal')
    .option('--servers <ips>', 'comma-separated name servers for names outside the mesh ("" removes them)');
  action(dns, io, async (ctx) => {
    const o = dns.opts<{ suffix?: string | false; servers?: string }>();
    const servers = o.servers === undefined ? undefined : o.servers.split(',').map((x) => x.trim()).filter((x) => x !== '');
    const { networkDns } = await import('../../control/dns-settings-ops.js');
    const r = await networkDns(controlContext(ctx), { suffix: o.suffix === false ? null : o.suffix, servers });
    ctx.print(r, () =>
      [
        `${r.changed ? 'Set' : 'Network'} DNS: suffix ${r.suffix ?? '(default: <network>.internal)'}, name servers ${r.servers.length ? r.servers.join(', ') : '(the hosts\' own)'}`,
        ...(r.changed ? ['Every node picks it up within seconds.'] : []),
      ].join('\n'),
    );
  });
}

/**
 * `meshd ip [PEER] [-4|-6]` and `meshd whois IP`: mesh addresses and who holds them, from the
 * network map this device last saw (no daemon or DWN needed).
 */
import type { Command } from 'commander';
import { MeshdError, UsageError } from '../../errors.js';
import type { MapPeer, NetworkMap } from '../../control/netmap.js';
import { canonicalIp } from '../../control/ip.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';

/** The network map this device last saw (the daemon keeps it up to date on disk). */
export async function lastMap(ctx: CommandContext): Promise<NetworkMap> {
  const [{ openProfile }, { readCachedMap, readJoinedNetwork }] = await Promise.all([import('../../identity/profile.js'), import('../../control/local-state.js')]);
  const dir = openProfile(ctx.home, ctx.profile).dir;
  const joined = readJoinedNetwork(dir);
  if (!joined) throw new MeshdError('E_NO_NETWORK', 'this device is in no network yet', { hint: 'run `meshd up --create NAME`, or `meshd up INVITE`' });
  const map = readCachedMap(dir, joined.networkId);
  if (!map) throw new MeshdError('E_NO_NETWORK', `no network map of ${joined.networkId} yet`, { hint: 'run `meshd up` once: it fetches the map' });
  return map;
}

export function registerLookup(program: Command, io: Io): void {
  const ip = subcommand(program, 'ip [peer]', "this device's mesh IP addresses, or a peer's (host name, mesh IP or DID)")
    .option('-4', 'only the IPv4 address')
    .option('-6', 'only the IPv6 address');
  action(ip, io, async (ctx, peer: string | undefined) => {
    const o = ip.opts<{ 4?: boolean; 6?: boolean }>();
    if (o[4] && o[6]) throw new UsageError('-4 and -6 exclude each other');
    const [map, { findPeer }] = await Promise.all([lastMap(ctx), import('../../daemon/peer-query.js')]);
    let p: MapPeer | null;
    if (peer === undefined) {
      p = map.self;
      if (!p) throw new MeshdError('E_NO_NETWORK', 'this device is not an active node of its network', { hint: '`meshd status` says why' });
    } else {
      const f = findPeer(map, peer);
      if (!f) throw new MeshdError('E_PEER_UNKNOWN', `no peer "${peer}" in this network`, { hint: '`meshd status` lists the peers' });
      p = f.peer;
    }
    const ips = o[4] ? [p.meshIP] : o[6] ? [p.meshIP6] : [p.meshIP, p.meshIP6];
    ctx.print({ did: p.did, ...(o[6] ? {} : { ipv4: p.meshIP }), ...(o[4] ? {} : { ipv6: p.meshIP6 }) }, ips.join('\n'));
  });

  const whois = subcommand(program, 'whois <ip>', 'who holds a mesh IP: name, DID, owner, member, tags');
  action(whois, io, async (ctx, addr: string) => {
    if (canonicalIp(addr) === null) throw new UsageError(`"${addr}" is not an IP address`, { hint: 'e.g. meshd whois 10.200.4.7' });
    const [map, { findPeer }] = await Promise.all([lastMap(ctx), import('../../daemon/peer-query.js')]);
    const f = findPeer(map, addr);
    if (!f) throw new MeshdError('E_PEER_UNKNOWN', `no device of network "${map.network.name}" has the address ${addr}`, { hint: '`meshd status` lists the peers' });
    const p = f.peer;
    const ownedByOwner = p.owner === map.anchor;
    const data = {
      name: p.hostname,
      did: p.did,
      meshIP: p.meshIP,
      meshIP6: p.meshIP6,
      owner: map.anchor,
      member: ownedByOwner ? null : p.owner,
      tags: p.capabilities,
      os: p.os,
      online: p.online,
      self: f.self,
    };
    ctx.print(data, () =>
      [
        `Name:    ${p.hostname ?? '-'}${f.self ? ' (this device)' : ''}`,
        `DID:     ${p.did}`,
        `Mesh IP: ${p.meshIP}, ${p.meshIP6}`,
        `Owner:   ${map.anchor} (network owner)`,
        `Member:  ${ownedByOwner ? "- (the network owner's device)" : p.owner}`,
        `Tags:    ${p.capabilities.length > 0 ? p.capabilities.join(', ') : '-'}`,
        `OS:      ${p.os ?? '-'}; ${p.online ? 'online' : 'offline'} (last endpoint update ${p.endpointUpdatedAt ?? 'never'})`,
      ].join('\n'),
    );
  });
}

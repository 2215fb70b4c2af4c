/** `meshd peer add|approve|remove|list`. */
import type { AgentPeerStatus } from '../../daemon/agent.js';
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';
import { formatDaemonPeers, formatPeerListing } from './peer-format.js';
import type { AddPeerResult } from '../../control/peer-ops.js';

function describeAdd(r: AddPeerResult): string {
  if (r.role === 'request') {
    return r.already
      ? `A request for ${r.did} is already waiting for the owner's approval.`
      : `Requested ${r.did}; the owner approves it with: meshd peer approve ${r.did}`;
  }
  if (r.role === 'member') return `${r.already ? 'Already a member' : 'Added member'} ${r.did} (network key epoch ${r.epoch} delivered).`;
  return `${r.already ? 'Already in the network' : 'Added'} ${r.did}\nMesh IP: ${r.meshIP} (${r.meshIP6})`;
}

export function registerPeer(program: Command, io: Io): void {
  const peer = subcommand(program, 'peer', 'manage the peers of the network');

  const add = subcommand(peer, 'add <did>', 'add a device (owner), or request one of your devices (member)')
    .option('--member', 'add a person who can then request their own devices')
    .option('--expires <time>', 'ISO 8601 time after which the device is treated as removed');
  action(add, io, async (ctx, did: string) => {
    const o = add.opts<{ member?: boolean; expires?: string }>();
    const { addPeer } = await import('../../control/peer-ops.js');
    const r = await addPeer(controlContext(ctx), did, { member: Boolean(o.member), ...(o.expires !== undefined ? { expiresAt: o.expires } : {}) });
    ctx.print(r, () => describeAdd(r));
  });

  action(subcommand(peer, 'approve <did>', "approve a member's device and deliver the network key (owner)"), io, async (ctx, did: string) => {
    const { approvePeer } = await import('../../control/peer-ops.js');
    const r = await approvePeer(controlContext(ctx), did);
    ctx.print(r, () => describeAdd(r));
  });

  action(subcommand(peer, 'remove <did>', 'revoke a device or member and rotate the network key (owner)'), io, async (ctx, did: string) => {
    const { removePeer } = await import('../../control/peer-ops.js');
    const r = await removePeer(controlContext(ctx), did);
    ctx.print(r, () => `Removed ${r.removed.join(', ')}\nNetwork key rotated to epoch ${r.epoch}.`);
  });

  action(subcommand(peer, 'list', 'list the peers of the network'), io, async (ctx) => {
    const [{ runningDaemonPid }, { callDaemon }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js')]);
    if (runningDaemonPid(ctx.home) !== null) {
      const d = await callDaemon<{ peers: AgentPeerStatus[] }>(ctx.home, 'GET', '/v0/peers');
      ctx.print({ source: 'daemon', peers: d.peers }, () => formatDaemonPeers(d.peers));
      return;
    }
    const { listPeers } = await import('../../control/peer-ops.js');
    const l = await listPeers(controlContext(ctx));
    ctx.print(l, () => formatPeerListing(l));
  });
}

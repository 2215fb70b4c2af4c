/** `meshd peer add|approve|remove|list`. */
import type { AgentPeerStatus } from '../../daemon/agent.js';
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { abbreviate } from '../../identity/did-jwk.js';
import { controlContext } from './network.js';
import type { AddPeerResult, PeerListing } from '../../control/peer-ops.js';

function describeAdd(r: AddPeerResult): string {
  if (r.role === 'request') {
    return r.already
      ? `A request for ${r.did} is already waiting for the owner's approval.`
      : `Requested ${r.did}; the owner approves it with: meshd peer approve ${r.did}`;
  }
  if (r.role === 'member') return `${r.already ? 'Already a member' : 'Added member'} ${r.did} (network key epoch ${r.epoch} delivered).`;
  return `${r.already ? 'Already in the network' : 'Added'} ${r.did}\nMesh IP: ${r.meshIP} (${r.meshIP6})`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatPeerListing(l: PeerListing): string {
  const rows = [['DID', 'MESH IP', 'HOST', 'ONLINE', 'PATH', 'HANDSHAKE', 'RX', 'TX']];
  for (const p of l.peers) {
    rows.push([
      abbreviate(p.did, 16) + (p.self ? ' (this device)' : ''),
      p.meshIP,
      p.hostname ?? '-',
      p.online ? 'yes' : 'no',
      p.path ?? (p.endpoints[0] ?? '-'),
      p.lastHandshake ?? '-',
      p.rxBytes === null ? '-' : String(p.rxBytes),
      p.txBytes === null ? '-' : String(p.txBytes),
    ]);
  }
  const out = [l.peers.length === 0 ? 'No peers.' : table(rows)];
  if (l.members.length > 0) out.push('', 'Members:', ...l.members.map((m) => `  ${m.did} (${m.status})`));
  if (l.pending.length > 0) out.push('', 'Waiting for approval (meshd peer approve DID):', ...l.pending.map((p) => `  ${p.did} requested by ${abbreviate(p.member, 16)}`));
  return out.join('\n');
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
    const [{ runningDaemonPid }, { callDaemon }, { formatDaemonPeers }] = await Promise.all([
      import('../../daemon/lock.js'),
      import('../../daemon/api.js'),
      import('./status.js'),
    ]);
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

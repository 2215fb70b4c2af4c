/** `meshd status` from the records (the daemon's view is merged in by the lead's daemon client). */
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';
import { formatPeerListing } from './peer.js';
import type { RecordsStatus } from '../../control/status-ops.js';

export function formatRecordsStatus(s: RecordsStatus): string {
  const lines = [`Identity: ${s.identity.did} (profile "${s.identity.profile}")`, `WireGuard public key: ${s.identity.wireguardPublicKey}`];
  if (!s.network) {
    lines.push('Network: none (run `meshd network create NAME` or `meshd network join --anchor DID --network ID`)');
    return lines.join('\n');
  }
  const n = s.network;
  lines.push(
    `Network: "${n.name}" ${n.networkId}`,
    `Owner: ${n.anchor}${n.roles.includes('owner') ? ' (this device)' : ''}`,
    `DWN: ${n.endpoint}`,
    `Roles: ${n.roles.join(', ')}; key epoch ${n.epoch}; mesh ${n.meshCIDR}`,
    'Engine: not running (records view)',
    '',
    formatPeerListing({ networkId: n.networkId, peers: s.peers, members: [], pending: s.pending }),
  );
  const skipped = Object.entries(s.skipped).filter(([, v]) => v > 0);
  if (skipped.length > 0) lines.push('', `Skipped records: ${skipped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}

export function registerStatus(program: Command, io: Io): void {
  action(subcommand(program, 'status', 'identity, network and peers'), io, async (ctx) => {
    const { recordsStatus } = await import('../../control/status-ops.js');
    const s = await recordsStatus(controlContext(ctx));
    ctx.print(s, () => formatRecordsStatus(s));
  });
}

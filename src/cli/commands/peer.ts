/** `meshd peer add|approve|remove|list`. */
import { daemonDir } from './network-target.js';
import type { AgentPeerStatus } from '../../daemon/agent-types.js';
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';
import { formatDaemonPeers, formatPeerListing } from './peer-format.js';
import type { AddPeerResult, PeerListing, RemovePeerResult } from '../../control/peer-ops.js';
import { readFileSync } from 'node:fs';
import { MeshdError, UsageError } from '../../errors.js';

function describeAdd(r: AddPeerResult): string {
  if (r.role === 'request') {
    return r.already
      ? `A request for ${r.did} is already waiting for the owner's approval.`
      : `Requested ${r.did}; the owner approves it with: meshd peer approve ${r.did}`;
  }
  if (r.role === 'member') return `${r.already ? 'Already a member' : 'Added member'} ${r.did} (network key epoch ${r.epoch} delivered).`;
  return `${r.already ? 'Already in the network' : 'Added'} ${r.did}\nMesh IP: ${r.meshIP} (${r.meshIP6})`;
}

/** DIDs from a file: one per line, blank lines and `#` comments ignored. */
function readDidFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l.length > 0);
}

/**
 * An owner operation through this home's running daemon, whose session is loaded and current
 * (no re-read of the network per command). Undefined when no daemon runs here, or it runs
 * another identity: the command then does the work itself.
 */
async function viaDaemon<T>(home: string, did: string, op: 'add' | 'approve' | 'remove', body: Record<string, unknown>): Promise<T | undefined> {
  const [{ runningDaemonPid }, { callDaemon }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js')]);
  if (runningDaemonPid(home) === null) return undefined;
  try {
    return await callDaemon<T>(home, 'POST', `/v0/peers/${op}`, { as: did, ...body }, 300_000);
  } catch (e) {
    if (e instanceof MeshdError && (e.code === 'E_WRONG_PROFILE' || e.code === 'E_NO_DAEMON' || e.code === 'E_NOT_OWNER')) return undefined;
    throw e;
  }
}

export function registerPeer(program: Command, io: Io): void {
  const peer = subcommand(program, 'peer', 'manage the peers of the network');

  const add = subcommand(peer, 'add [did...]', 'add devices (owner), or request your own devices (member)')
    .option('--member', 'add people who can then request their own devices')
    .option('--expires <time>', 'ISO 8601 time after which the device is removed')
    .option('--file <path>', 'read DIDs from a file, one per line (# starts a comment)');
  action(add, io, async (ctx, dids: string[]) => {
    const o = add.opts<{ member?: boolean; expires?: string; file?: string }>();
    const all = [...(dids ?? []), ...(o.file !== undefined ? readDidFile(o.file) : [])];
    const { addPeers, checkAddRequest } = await import('../../control/peer-ops.js');
    const opts = { member: Boolean(o.member), ...(o.expires !== undefined ? { expiresAt: o.expires } : {}) };
    checkAddRequest(all, opts); // usage errors before anything is written
    const cc = controlContext(ctx);
    if (all.length > 1) ctx.progress(`adding ${all.length} ${o.member ? 'members' : 'devices'}…`);
    const results =
      (await viaDaemon<{ results: AddPeerResult[] }>(daemonDir(ctx), cc.profile.did, 'add', { dids: all, ...opts }))?.results ?? (await addPeers(cc, all, opts));
    ctx.print(results.length === 1 ? results[0] : { results }, () => results.map(describeAdd).join('\n'));
  });

  action(subcommand(peer, 'approve <did>', "approve a member's device and deliver the network key (owner)"), io, async (ctx, did: string) => {
    const { approvePeer } = await import('../../control/peer-ops.js');
    const cc = controlContext(ctx);
    const r = (await viaDaemon<AddPeerResult>(daemonDir(ctx), cc.profile.did, 'approve', { dids: [did] })) ?? (await approvePeer(cc, did));
    ctx.print(r, () => describeAdd(r));
  });

  action(subcommand(peer, 'remove <did>', 'revoke a device or member and rotate the network key (owner)'), io, async (ctx, did: string) => {
    const { removePeer } = await import('../../control/peer-ops.js');
    const cc = controlContext(ctx);
    const r = (await viaDaemon<RemovePeerResult>(daemonDir(ctx), cc.profile.did, 'remove', { dids: [did] })) ?? (await removePeer(cc, did));
    ctx.print(r, () =>
      r.rotating
        ? `Removed ${r.removed.join(', ')}: every device drops it now.\nThe owner's daemon is rotating the network key to epoch ${r.epoch} (\`meshd status\` shows what is left).`
        : `Removed ${r.removed.join(', ')}\nNetwork key rotated to epoch ${r.epoch}.`,
    );
  });

  action(subcommand(peer, 'list', 'list the peers of the network'), io, async (ctx) => {
    const [{ runningDaemonPid }, { callDaemon }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js')]);
    const runDir = daemonDir(ctx);
    if (runningDaemonPid(runDir) !== null) {
      const d = await callDaemon<{ peers: AgentPeerStatus[]; members?: PeerListing['members']; pending?: PeerListing['pending'] }>(runDir, 'GET', '/v0/peers');
      ctx.print({ source: 'daemon', ...d }, () =>
        [formatDaemonPeers(d.peers), formatPeerListing({ networkId: '', peers: [], members: d.members ?? [], pending: d.pending ?? [] }).replace(/^No peers\.\n?\n?/, '')]
          .filter((x) => x.length > 0)
          .join('\n\n'),
      );
      return;
    }
    const [{ listPeers }, { cachedPeerListing }] = await Promise.all([import('../../control/peer-ops.js'), import('../../control/status-ops.js')]);
    const cc = controlContext(ctx);
    const l = await listPeers(cc).catch((e: unknown) => cachedPeerListing(cc, e));
    if ('warning' in l) ctx.progress(`Warning: ${l.warning}`);
    ctx.print(l, () => formatPeerListing(l));
  });
}

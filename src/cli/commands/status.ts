/** `meshd status`: from the running daemon when there is one, otherwise from the records. */
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { callDaemon } from '../../daemon/api.js';
import { runningDaemonPid } from '../../daemon/lock.js';
import type { AgentStatus } from '../../daemon/agent-types.js';
import { controlContext } from './network.js';
import { allTargets, networkTarget } from './network-target.js';
import { MeshdError } from '../../errors.js';
import type { JoinedSlot, NetworkSlot } from '../../control/network-slots.js';
import { formatDaemonPeers, formatPeerListing } from './peer-format.js';
import { formatRoutingStatus } from './routing-format.js';
import type { RecordsStatus } from '../../control/status-ops.js';

export function formatRecordsStatus(s: RecordsStatus): string {
  const lines = [`Identity: ${s.identity.did} (profile "${s.identity.profile}")`, `WireGuard public key: ${s.identity.wireguardPublicKey}`];
  if (!s.network) {
    lines.push('Network: none (run `meshd network create NAME` or `meshd network join --anchor DID --network ID`)');
    return lines.join('\n');
  }
  const n = s.network;
  if (s.warning) lines.push(`Warning: ${s.warning}`);
  lines.push(
    `Network: "${n.name}" ${n.networkId}`,
    `Owner: ${n.anchor}${n.roles.includes('owner') ? ' (this device)' : ''}`,
    `DWN: ${n.endpoint}`,
    `Roles: ${n.roles.join(', ')}; key epoch ${n.epoch}; mesh ${n.meshCIDR}`,
    `Engine: not running (${s.source === 'cache' ? 'cached map' : 'records view'})`,
    '',
    formatPeerListing({ networkId: n.networkId, peers: s.peers, members: [], pending: s.pending }),
  );
  const skipped = Object.entries(s.skipped).filter(([, v]) => v > 0);
  if (skipped.length > 0) lines.push('', `Skipped records: ${skipped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}

export function formatDaemonStatus(s: AgentStatus & { pid?: number }): string {
  const lines = [`Identity: ${s.identity.did}`, `WireGuard public key: ${s.identity.wireguardKey}`, `Mesh IP: ${s.identity.meshIP ?? '-'} (${s.identity.meshIP6 ?? '-'})`];
  if (s.network) {
    lines.push(`Network: "${s.network.name}" ${s.network.id} (key epoch ${s.network.epoch})`, `DWN: ${s.network.endpoint} (${s.control?.connected ? 'connected' : 'disconnected, using the last map'})`);
  }
  if (s.dataplane) {
    const d = s.dataplane;
    lines.push(
      `Engine: running (pid ${s.pid ?? '?'}), device ${d.tunName}, UDP port ${d.listenPort}`,
      `Endpoints: public ${d.publicEndpoints.join(', ') || '-'}; NAT ${d.natType}; home relay ${d.homeRelay ?? '-'}`,
    );
    // A relay that cannot be used (refused certificate, unreachable...) says why.
    for (const r of d.relays ?? []) if (r.state !== 'connected' && r.lastError) lines.push(`Relay ${r.url}: ${r.state}, ${r.lastError}`);
  }
  if (s.relayServer) lines.push(`Relay server: ${s.relayServer.url}`);
  const left = s.control?.rotationLeft;
  if (left) lines.push(`Key rotation: in progress (${left.bump ? 'the new key not yet named; ' : ''}${left.rewrites} records to re-encrypt, ${left.deletions} to delete)`);
  if (s.dns) lines.push(`DNS: ${s.dns.name ?? '-'} (server ${s.dns.address}:${s.dns.port}, host ${s.dns.mode === 'none' ? 'not configured: meshd up --accept-dns' : `via ${s.dns.mode}`})`);
  if (s.control?.revoked) {
    lines.push(
      '',
      `This device was removed from network ${s.network?.id ?? ''} by its owner: it has no peers any more.`,
      'Run `meshd down`, then `meshd network leave --force`; to come back, ask the owner for a new invite.',
    );
    return lines.join('\n');
  }
  if (s.routing) lines.push(...formatRoutingStatus(s.routing, s.peers));
  lines.push('', formatDaemonPeers(s.peers));
  return lines.join('\n');
}

export interface NetworkRow {
  network: string;
  name: string | null;
  state: string;
  pid: number | null;
  tun: string | null;
  port: number | null;
  prefix: string | null;
  meshIP: string | null;
  peers: number | null;
  online: number | null;
}

/** One line per network: what `meshd status` shows for an identity in several. */
export function formatNetworkRows(rows: NetworkRow[]): string {
  const head = ['NETWORK', 'ID', 'STATE', 'TUN', 'PORT', 'PREFIX', 'MESH IP', 'PEERS'];
  const body = rows.map((r) => [
    r.name ?? '?',
    r.network,
    r.state,
    r.tun ?? '-',
    r.port !== null ? String(r.port) : '-',
    r.prefix ?? '-',
    r.meshIP ?? '-',
    r.peers !== null ? `${r.online ?? 0}/${r.peers} online` : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(head), ...body.map(line), '', 'One network in full: meshd status --network NAME|ID'].join('\n');
}

async function networkRow(slot: JoinedSlot): Promise<NetworkRow> {
  const base: NetworkRow = { network: slot.joined.networkId, name: slot.name, state: 'down', pid: null, tun: null, port: null, prefix: slot.meshCIDR, meshIP: null, peers: null, online: null };
  if (runningDaemonPid(slot.runDir) === null) return base;
  try {
    const d = await callDaemon<AgentStatus & { state: string; pid: number }>(slot.runDir, 'GET', '/v0/status/live');
    return {
      ...base,
      name: d.network?.name ?? base.name,
      state: d.state,
      pid: d.pid,
      tun: d.dataplane?.tunName ?? null,
      port: d.dataplane?.listenPort ?? null,
      prefix: d.network?.meshCIDR ?? base.prefix,
      meshIP: d.identity.meshIP,
      peers: d.peers?.length ?? null,
      online: d.peers?.filter((p) => p.online).length ?? null,
    };
  } catch (e) {
    return { ...base, state: `unreachable (${(e as Error).message.slice(0, 60)})` };
  }
}

export function registerStatus(program: Command, io: Io): void {
  action(subcommand(program, 'status', 'identity, network and peers (every network: a line each; --network NAME|ID: one in full)'), io, async (ctx) => {
    let targets: Array<{ slot?: NetworkSlot | JoinedSlot; runDir: string }>;
    try {
      targets = ctx.network !== undefined ? [networkTarget(ctx)] : allTargets(ctx);
    } catch (e) {
      if (!(e instanceof MeshdError && e.code === 'E_NO_IDENTITY' && ctx.network === undefined)) throw e;
      targets = [{ runDir: ctx.home }];
    }
    if (targets.length > 1) {
      const rows = await Promise.all(targets.map((t) => networkRow(t.slot as JoinedSlot)));
      ctx.print({ source: 'networks', networks: rows }, () => formatNetworkRows(rows));
      return;
    }
    const runDir = targets[0]!.runDir;
    if (runningDaemonPid(runDir) !== null) {
      const d = await callDaemon<AgentStatus & { state: string; pid: number }>(runDir, 'GET', '/v0/status/live');
      ctx.print({ source: 'daemon', ...d }, () => formatDaemonStatus(d));
      return;
    }
    const { recordsStatus } = await import('../../control/status-ops.js');
    const s = await recordsStatus(controlContext(ctx));
    ctx.print(s, () => formatRecordsStatus(s));
  });
}

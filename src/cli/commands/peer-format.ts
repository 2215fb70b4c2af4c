/**
 * Peer tables for `meshd peer list` and `meshd status`: the records view (formatPeerListing) and
 * the running daemon's view (formatDaemonPeers). Shared by both commands, so neither imports
 * the other.
 */
import type { AgentPeerStatus } from '../../daemon/agent.js';
import { abbreviate } from '../../identity/did-jwk.js';
import type { PeerListing } from '../../control/peer-ops.js';

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

function ago(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1073741824).toFixed(2)} GiB`;
}

export function formatPath(p: AgentPeerStatus): string {
  if (p.path === 'direct') return `direct ${p.endpoint ?? ''}${p.latencyMs !== null ? ` (${p.latencyMs.toFixed(1)} ms)` : ''}`;
  if (p.path === 'relay') return `relay ${p.relay ?? ''}`;
  return '-';
}

export function formatDaemonPeers(peers: AgentPeerStatus[], now = Date.now()): string {
  if (peers.length === 0) return 'No peers yet. Invite a machine with `meshd invite` (owner).';
  const rows = [['HOST', 'MESH IP', 'STATE', 'PATH', 'HANDSHAKE', 'RX', 'TX', 'DID']];
  for (const p of peers) {
    rows.push([p.dnsName ?? p.hostname ?? '-', p.meshIP, p.online ? 'online' : 'offline', formatPath(p), ago(p.lastHandshake, now), bytes(p.rxBytes), bytes(p.txBytes), abbreviate(p.did, 16)]);
  }
  return table(rows);
}

/**
 * Peer tables for `meshd peer list` and `meshd status`: the records view (formatPeerListing) and
 * the running daemon's view (formatDaemonPeers). Shared by both commands, so neither imports
 * the other.
 */
import type { AgentPeerStatus } from '../../daemon/agent-types.js';
import type { PeerListing } from '../../control/peer-ops.js';

/**
 * A DID short enough for a table: eight characters from its end, which tell did:jwk DIDs apart
 * (their first ones, and their last three, encode the same JSON for everyone). A literal piece
 * of the DID: `grep` finds it in --json output.
 */
export function shortDid(did: string): string {
  return did.length <= 24 ? did : `…${did.slice(-11, -3)}`;
}

/** Bytes in at most six characters: 512B, 120.6K, 9.5M, 1.2G. */
function shortBytes(n: number): string {
  return n < 1024 ? `${n}B` : n < 1048576 ? `${(n / 1024).toFixed(1)}K` : n < 1073741824 ? `${(n / 1048576).toFixed(1)}M` : `${(n / 1073741824).toFixed(1)}G`;
}

/** Columns padded to their widest cell, two spaces apart (the first row is the header). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatPeerListing(l: PeerListing): string {
  const rows = [['DID', 'MESH IP', 'HOST', 'ONLINE', 'PATH', 'HANDSHAKE', 'RX', 'TX']];
  for (const p of l.peers) {
    rows.push([
      shortDid(p.did) + (p.self ? ' (this device)' : ''),
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
  if (l.pending.length > 0) out.push('', 'Waiting for approval (meshd peer approve DID):', ...l.pending.map((p) => `  ${p.did} requested by ${shortDid(p.member)}`));
  return out.join('\n');
}

function ago(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

/** How this device reaches the peer: a direct ip:port, or the relay's host:port. */
export function formatPath(p: AgentPeerStatus): string {
  if (p.path === 'direct') return p.endpoint ?? '-';
  if (p.path === 'relay' && p.relay) {
    try {
      return new URL(p.relay).host;
    } catch {
      return p.relay;
    }
  }
  return '-';
}

/**
 * The running daemon's view, one row a peer within 100 columns: STATE is offline when the peer
 * did not answer just now, else how it is reached (direct or relay, VIA where, with the round
 * trip); host names cut at 12 characters, DIDs shortened; full values are in --json.
 */
export function formatDaemonPeers(peers: AgentPeerStatus[], now = Date.now()): string {
  if (peers.length === 0) return 'No peers yet. Invite a machine with `meshd invite` (owner).';
  const rows = [['HOST', 'MESH IP', 'STATE', 'VIA', 'HANDSHAKE', 'RX/TX', 'DID']];
  for (const p of peers) {
    const state = !p.online ? 'offline' : p.path === 'none' ? 'online' : p.path;
    const latency = p.online && p.latencyMs !== null ? ` ${p.latencyMs < 10 ? p.latencyMs.toFixed(1) : Math.round(p.latencyMs)}ms` : '';
    const via = formatPath(p);
    // the DNS label (the suffix is the same for every peer; `meshd status` names it)
    const name = p.dnsName?.split('.')[0] ?? p.hostname;
    const host = name === null ? '-' : name.length > 12 ? `${name.slice(0, 11)}…` : name;
    const hs = p.lastHandshake === null ? '-' : ago(p.lastHandshake, now);
    rows.push([host, p.meshIP, state, via === '-' ? via : via + latency, hs, `${shortBytes(p.rxBytes)}/${shortBytes(p.txBytes)}`, shortDid(p.did)]);
  }
  return table(rows);
}

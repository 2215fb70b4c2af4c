/**
 * The routing lines of `meshd status` (the running daemon's view): the subnet routes this node
 * advertises and whether the owner approved them, the exit node it offers, the exit node it
 * uses. Within 100 columns like the peer table; full values are in --json (`routing`).
 */
import type { AgentPeerStatus, AgentRoutingStatus } from '../../daemon/agent-types.js';
import { shortDid, table } from './peer-format.js';

/** The widest a status line gets, as for the peer table. */
export const STATUS_COLUMNS = 100;

function clip(line: string): string {
  return line.length <= STATUS_COLUMNS ? line : `${line.slice(0, STATUS_COLUMNS - 1)}…`;
}

/** How a peer is named in one cell: its DNS label or host name (cut at 12), its mesh IP, its DID. */
function peerName(did: string, peers: readonly AgentPeerStatus[]): string {
  const p = peers.find((x) => x.did === did);
  if (!p) return shortDid(did);
  const name = p.dnsName?.split('.')[0] ?? p.hostname;
  const host = name === null ? '' : `${name.length > 12 ? `${name.slice(0, 11)}…` : name} `;
  return `${host}(${p.meshIP}, ${shortDid(did)})`;
}

/**
 * The routing section: nothing when this node neither offers nor uses routes. A route that
 * waits for the owner says how to approve it; an exit node asked for but not in use says why.
 */
export function formatRoutingStatus(r: AgentRoutingStatus, peers: readonly AgentPeerStatus[]): string[] {
  const lines: string[] = [];
  if (r.advertisedRoutes.length > 0 || r.advertisesExitNode) {
    const rows = [['ADVERTISED', 'STATE']];
    let waiting = false;
    for (const route of r.advertisedRoutes) {
      const inUse = r.routes.includes(route);
      waiting ||= !inUse;
      rows.push([route, inUse ? 'approved, routed' : 'waiting for the owner']);
    }
    if (r.advertisesExitNode) {
      waiting ||= !r.exitNodeApproved;
      rows.push(['exit node', r.exitNodeApproved ? 'approved (peers may choose it)' : 'waiting for the owner']);
    }
    lines.push('', 'Routes offered:', ...table(rows).split('\n').map((l) => `  ${l}`));
    if (waiting) lines.push('  (the owner approves them: meshd route list, then meshd route approve DID PREFIX|exit-node)');
  }
  if (r.exitNodeWanted !== null) {
    lines.push(
      r.exitNode !== null
        ? `Exit node: ${peerName(r.exitNode, peers)}, all traffic goes through it`
        : `Exit node: "${r.exitNodeWanted.startsWith('did:') ? shortDid(r.exitNodeWanted) : r.exitNodeWanted}" not in use (unknown, or not an approved exit node); traffic goes out directly`,
    );
  }
  if (r.error !== null) lines.push(`Routing error: ${r.error}`);
  return lines.map(clip);
}

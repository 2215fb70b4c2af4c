/**
 * What the dashboard shows, built from the agent's status and its control session: the peers
 * (online, path, latency, traffic), the network and its connections, the recent events and
 * record skips, and for the owner the pending device requests, members, invites and the ACL
 * policy — all read from what the daemon already holds (no DWN request per update).
 *
 * While a dashboard watches, peers are pinged every update (`UiLiveness`): a peer that stops
 * answering shows offline within a couple of seconds, not after the 20 s of `meshd status`.
 */
import type { ControlClient } from '../control/control-client.js';
import { inviteRows, type InviteRow } from '../control/invite-ops.js';
import { currentPolicy } from '../control/model.js';
import { peerListing, type PeerListing } from '../control/peer-ops.js';
import type { AclPolicyRecord } from '../control/records.js';
import type { SkipCounters } from '../control/reader.js';
import type { DataPlane } from '../engine/dataplane.js';
import type { AgentPeerStatus, AgentStatus } from './agent-types.js';
import type { RecentEvent } from './recent-events.js';

/** Peers not heard from within this long are pinged by each dashboard update. */
const PROBE_FRESH_MS = 300;
/**
 * A pinged peer not heard from for this long shows offline on the dashboard. Over a relay the
 * engine pings at most once a second, so a relayed peer is given longer.
 */
export const UI_OFFLINE_AFTER_MS = 1200;
export const UI_OFFLINE_AFTER_RELAYED_MS = 2500;
/** A pause in updates this long starts the watch afresh (nobody pinged meanwhile). */
const WATCH_GAP_MS = 5000;
const EVENTS_SHOWN = 60;
const SKIPS_SHOWN = 20;

export interface UiOwnerView {
  pending: PeerListing['pending'];
  members: PeerListing['members'];
  invites: InviteRow[];
  acl: AclPolicyRecord | null;
}

export interface UiView {
  generatedAt: string;
  self: { did: string; hostname: string | null; meshIP: string | null; meshIP6: string | null };
  network: { id: string; name: string; epoch: number; endpoint: string; owner: string } | null;
  role: string | null;
  control: { connected: boolean; lastError: string | null; lastRefreshAt: string | null; skipped: SkipCounters | null };
  dataplane: {
    listenPort: number;
    natType: string;
    publicEndpoints: string[];
    homeRelay: string | null;
    relays: { url: string; home: boolean; state: string }[];
  } | null;
  filter: { policyVersion: number | null; aclDrop: number; spoof: number };
  peers: AgentPeerStatus[];
  owner: UiOwnerView | null;
  skips: { at: string; kind: string; recordId: string; reason: string; message: string }[];
  events: RecentEvent[];
}

/** The dashboard's liveness checks: ping every peer each update, offline when silent too long. */
export class UiLiveness {
  private watchingSince = -Infinity;
  private lastTick = -Infinity;

  constructor(private readonly now: () => number = Date.now) {}

  /** Ping the peers due, and say which ones have been silent too long (their WireGuard keys). */
  tick(dp: DataPlane | undefined): Set<string> {
    const now = this.now();
    if (now - this.lastTick > WATCH_GAP_MS) this.watchingSince = now;
    this.lastTick = now;
    if (!dp) return new Set();
    dp.probePeers(PROBE_FRESH_MS);
    // until the first answers had time to come, the agent's own view stands
    if (now - this.watchingSince < UI_OFFLINE_AFTER_MS) return new Set();
    return new Set(
      dp
        .status()
        .peers.filter((p) => p.heardAgoMs === undefined || p.heardAgoMs > (p.path === 'relay' ? UI_OFFLINE_AFTER_RELAYED_MS : UI_OFFLINE_AFTER_MS))
        .map((p) => p.publicKey),
    );
  }
}

function ownerView(c: ControlClient, now: number): UiOwnerView | null {
  const s = c.session;
  if (s.role !== 'owner') return null;
  const l = peerListing(s, now);
  return {
    pending: l.pending,
    members: l.members,
    invites: inviteRows(s, now),
    acl: currentPolicy(s.set, s.joined.networkId, s.joined.anchor)?.data ?? null,
  };
}

/** The dashboard's view of the agent now. */
export function buildUiView(input: { status: AgentStatus; hostname: string | null; control: ControlClient | undefined; events: RecentEvent[]; now: number }): UiView {
  const { status: st, control: c, now } = input;
  const dp = st.dataplane;
  let owner: UiOwnerView | null;
  try {
    owner = c ? ownerView(c, now) : null;
  } catch {
    owner = null; // a session still loading: the owner's panels come with the next update
  }
  return {
    generatedAt: new Date(now).toISOString(),
    self: { did: st.identity.did, hostname: input.hostname, meshIP: st.identity.meshIP, meshIP6: st.identity.meshIP6 },
    network: st.network ? { id: st.network.id, name: st.network.name, epoch: st.network.epoch, endpoint: st.network.endpoint, owner: st.network.anchor } : null,
    role: st.control?.role ?? null,
    control: {
      connected: st.control?.connected ?? false,
      lastError: st.control?.lastError ?? null,
      lastRefreshAt: st.control?.lastRefreshAt ?? null,
      skipped: st.control?.skipped ?? null,
    },
    dataplane: dp
      ? {
          listenPort: dp.listenPort,
          natType: dp.natType,
          publicEndpoints: dp.publicEndpoints,
          homeRelay: dp.homeRelay,
          relays: dp.relays.map((r) => ({ url: r.url, home: r.home, state: r.state })),
        }
      : null,
    filter: { policyVersion: st.filter.policyVersion, aclDrop: st.filter.aclDrop, spoof: st.filter.spoof },
    peers: st.peers,
    owner,
    skips: (c?.session.skips.recent ?? []).slice(-SKIPS_SHOWN).map((r) => ({ at: r.at, kind: r.kind, recordId: r.recordId, reason: r.reason, message: r.message })),
    events: input.events.slice(-EVENTS_SHOWN),
  };
}

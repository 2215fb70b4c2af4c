/**
 * Relay records: the relays every node uses as home relays and STUN servers. Only the owner
 * writes them. A device or a member that runs a relay proposes it (a `relayProposal` only the
 * owner can read); nodes use it once the owner approves it (`meshd relay approve URL`), which
 * writes the owner's own relay record. A record for the same URL is updated, not duplicated.
 */
import { MeshdError } from '../errors.js';
import { ROLE_MEMBER, ROLE_NODE } from './protocol.js';
import type { RelayRecord } from './records.js';
import { NetworkSession, requireOwner, x25519OfDid, type ControlContext } from './session.js';
import { compareText } from '../util/compare.js';

export interface PublishRelayResult {
  url: string;
  created: boolean;
  /** 'relay': in use now (owner); 'proposal': waits for the owner's approval. */
  as: 'relay' | 'proposal';
}

/** The owner's relay record for `relay.url`, written or brought up to date. */
async function writeOwnerRelay(s: NetworkSession, relay: RelayRecord): Promise<boolean> {
  const epoch = s.network().data.epoch;
  const existing = s.set.relay.find((r) => r.parentContextId === s.joined.networkId && r.author === s.me && r.data.url === relay.url);
  if (existing) {
    if (JSON.stringify(existing.data) !== JSON.stringify(relay)) await s.update(existing, relay, s.recipients(epoch));
    return false;
  }
  await s.writeNew('relay', relay, { parentContextId: s.joined.networkId, recipients: s.recipients(epoch) });
  return true;
}

/** Announce a relay: the owner writes it; a device or member proposes it to the owner. */
export async function publishRelay(ctx: ControlContext, relay: RelayRecord): Promise<PublishRelayResult> {
  const s = await NetworkSession.open(ctx);
  try {
    if (s.role === 'owner') {
      await s.load(['network', 'relay']);
      return { url: relay.url, created: await writeOwnerRelay(s, relay), as: 'relay' };
    }
    await s.load(['keyDelivery', 'network', 'relayProposal']);
    const existing = s.set.relayProposal.find((r) => r.author === s.me && r.data.url === relay.url);
    const recipients = s.acc.keyring.privateRecipients(x25519OfDid(s.joined.anchor));
    if (existing) {
      if (JSON.stringify(existing.data) !== JSON.stringify(relay)) await s.update(existing, relay, recipients);
      return { url: relay.url, created: false, as: 'proposal' };
    }
    const protocolRole = s.role === 'node' ? ROLE_NODE : ROLE_MEMBER;
    await s.writeNew('relayProposal', relay, { parentContextId: s.joined.networkId, recipients, protocolRole });
    return { url: relay.url, created: true, as: 'proposal' };
  } finally {
    await s.close();
  }
}

export interface RelayProposalRow {
  url: string;
  region: string;
  proposedBy: string;
  approved: boolean;
}

/** Relay proposals from devices and members, and whether the owner uses each (owner only). */
export async function listRelayProposals(ctx: ControlContext): Promise<RelayProposalRow[]> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'review relay proposals');
    await s.load(['network', 'relay', 'relayProposal']);
    const inUse = new Set(s.set.relay.filter((r) => r.author === s.me).map((r) => r.data.url));
    return s.set.relayProposal
      .filter((p) => p.parentContextId === s.joined.networkId)
      .map((p) => ({ url: p.data.url, region: p.data.region, proposedBy: p.author, approved: inUse.has(p.data.url) }))
      .sort((a, b) => compareText(a.url, b.url));
  } finally {
    await s.close();
  }
}

/** Approve a proposed relay: the owner writes a relay record for it, and nodes start using it. */
export async function approveRelay(ctx: ControlContext, url: string): Promise<PublishRelayResult> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'approve relays');
    await s.load(['network', 'relay', 'relayProposal']);
    const p = s.set.relayProposal.find((r) => r.parentContextId === s.joined.networkId && r.data.url === url);
    if (!p) {
      throw new MeshdError('E_NO_NETWORK', `no device or member proposed the relay ${url}`, { hint: 'see `meshd relay proposals`' });
    }
    return { url, created: await writeOwnerRelay(s, p.data), as: 'relay' };
  } finally {
    await s.close();
  }
}

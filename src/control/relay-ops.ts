/**
 * Relay records (spec 5.2/5.3): a node that runs a relay announces it so every node of the
 * network can use it as a home relay and a STUN server. The owner writes them (members may too,
 * through their role); a record for the same URL is updated, not duplicated.
 */
import { MeshdError } from '../errors.js';
import { canonicalDid } from '../identity/did-jwk.js';
import type { RelayRecord } from './records.js';
import { NetworkSession, type ControlContext } from './session.js';

export interface PublishRelayResult {
  url: string;
  created: boolean;
}

export async function publishRelay(ctx: ControlContext, relay: RelayRecord): Promise<PublishRelayResult> {
  const s = await NetworkSession.open(ctx);
  try {
    if (s.role !== 'owner' && s.role !== 'member') {
      throw new MeshdError('E_NOT_OWNER', 'only the network owner or a member can announce a relay', { hint: `the owner is ${s.joined.anchor}` });
    }
    await s.load(['network', 'relay']);
    const epoch = s.network().data.epoch;
    const me = canonicalDid(ctx.profile.did);
    const existing = s.set.relay.find((r) => r.parentContextId === s.joined.networkId && r.author === me && r.data.url === relay.url);
    if (existing) {
      if (JSON.stringify(existing.data) !== JSON.stringify(relay) || existing.epoch !== epoch) await s.update(existing, relay, s.recipients(epoch));
      return { url: relay.url, created: false };
    }
    await s.writeNew('relay', relay, {
      parentContextId: s.joined.networkId,
      recipients: s.recipients(epoch),
      ...(s.role === 'member' ? { protocolRole: 'network/member' } : {}),
    });
    return { url: relay.url, created: true };
  } finally {
    await s.close();
  }
}

/**
 * Members invite their own devices. The owner's policy lives in the network record
 * (`memberDevices`: how many devices each member may have admitted without the owner, and the
 * owner's invite record those invites hang off). A joining device's request there carries the
 * member's signed grant; the owner's daemon admits it while the member is under the limit, and
 * otherwise leaves it waiting for `meshd peer approve`.
 */
import { randomBytes } from 'node:crypto';
import { MeshdError, UsageError } from '../errors.js';
import { isNodeActive, memberRecords, nodeRecords } from './model.js';
import type { Decoded } from './reader.js';
import type { InviteRecord } from './records.js';
import { proofMatches, readGrant, type MemberGrant } from './invite-token.js';
import type { NetworkSession } from './session.js';

/** Devices each member may bring without the owner's approval, unless the owner says otherwise. */
export const DEFAULT_MEMBER_DEVICES = 5;
/** The "member devices" invite record never expires by itself (the policy switches it off). */
const NEVER = '9999-12-31T00:00:00.000Z';

/** The owner's "member devices" invite record, when the policy names one that exists. */
export function memberDevicesInvite(s: NetworkSession): Decoded<'invite'> | undefined {
  const id = s.network().data.memberDevices?.invite;
  return id === undefined ? undefined : s.set.invite.find((i) => i.recordId === id && i.author === s.joined.anchor);
}

/**
 * Set (or create) the policy in an owner session with network and invite loaded: `max` devices
 * per member (default: the current value, else DEFAULT_MEMBER_DEVICES).
 */
export async function setMemberDevices(s: NetworkSession, max?: number): Promise<{ max: number; invite: string }> {
  if (max !== undefined && (!Number.isInteger(max) || max < 0 || max > 1000)) throw new UsageError(`--member-devices ${max} is not a number from 0 to 1000`);
  const net = s.network();
  const cur = net.data.memberDevices;
  let invite = memberDevicesInvite(s)?.recordId;
  if (invite === undefined) {
    const data: InviteRecord = { role: 'memberDevices', expiresAt: NEVER, verifier: randomBytes(32).toString('base64url'), used: [] };
    invite = (await s.writeNew('invite', data, { parentContextId: s.joined.networkId, recipients: s.acc.keyring.privateRecipients() })).recordId;
  }
  const next = { max: max ?? cur?.max ?? DEFAULT_MEMBER_DEVICES, invite };
  if (cur?.max !== next.max || cur.invite !== next.invite) await s.update(net, { ...net.data, memberDevices: next }, s.recipients(net.data.epoch));
  return next;
}

/** Active devices a member has in the network, other than `except`. */
export function memberDeviceCount(s: NetworkSession, member: string, except: string, now: number): number {
  return nodeRecords(s.set, s.joined.networkId, s.joined.anchor).filter((n) => n.data.owner === member && n.data.did !== except && isNodeActive(n.data, now)).length;
}

export type MemberJoin = { grant: MemberGrant; refusal?: undefined } | { grant?: undefined; refusal: string };

/**
 * Check a join request under the "member devices" invite: a grant signed by an active member
 * of this network, not expired, not used up, whose verifier the request's proof matches.
 */
export function checkMemberJoin(s: NetworkSession, inv: Decoded<'invite'>, r: Decoded<'joinRequest'>, now: number): MemberJoin {
  const grant = r.data.grant === undefined ? undefined : readGrant(r.data.grant);
  if (!grant || grant.networkId !== s.joined.networkId) return { refusal: 'the request carries no valid member grant' };
  const member = memberRecords(s.set, s.joined.networkId, s.joined.anchor).find((m) => m.data.did === grant.member);
  if (!member || member.data.status !== 'active') return { refusal: 'the member who invited it is not in the network' };
  if (Date.parse(grant.expiresAt) <= now) return { refusal: 'the invite expired' };
  if (!proofMatches(grant.verifier, inv.recordId, r.data.did, r.data.proof)) return { refusal: 'the request does not prove the invite secret' };
  const used = inv.data.used.filter((u) => u.grant === grant.nonce);
  if (grant.uses !== null && !used.some((u) => u.did === r.data.did) && used.length >= grant.uses) return { refusal: 'the invite is used up' };
  return { grant };
}

/** Note that `did` joined with the grant (counts its uses). */
export async function noteGrantUse(s: NetworkSession, inv: Decoded<'invite'>, did: string, nonce: string, now: number): Promise<void> {
  if (inv.data.used.some((u) => u.did === did && u.grant === nonce)) return;
  await s.update(inv, { ...inv.data, used: [...inv.data.used, { did, at: new Date(now).toISOString(), grant: nonce }] }, s.acc.keyring.privateRecipients());
}

/** Members' devices waiting for the owner's approval (requests over the policy's limit). */
export function pendingMemberDevices(s: NetworkSession, now: number): { request: Decoded<'joinRequest'>; grant: MemberGrant }[] {
  if (s.role !== 'owner' || s.set.network.length === 0) return [];
  const inv = memberDevicesInvite(s);
  if (!inv) return [];
  const out: { request: Decoded<'joinRequest'>; grant: MemberGrant }[] = [];
  for (const r of s.set.joinRequest) {
    if (r.parentContextId !== inv.contextId || r.author !== r.data.did) continue;
    const c = checkMemberJoin(s, inv, r, now);
    if (c.grant) out.push({ request: r, grant: c.grant });
  }
  return out;
}

/** The error a member gets when the owner has not enabled member invites. */
export function memberInvitesOff(): MeshdError {
  return new MeshdError('E_NOT_OWNER', "the network's owner has not allowed members to invite their devices", {
    hint: 'ask the owner to run `meshd network policy --member-devices 5`, or to invite the device (`meshd invite`)',
  });
}

/**
 * One-command invites. The owner writes an invite record (readable by the owner only) holding
 * a verifier derived from a fresh secret, and prints one line: `meshd up <invite>`. The invite
 * carries the DWN endpoint, the owner, the network, the invite's record id, its expiry and the
 * secret. The joining device writes a join request under the invite (anyone may, knowing the
 * invite's id) proving the secret with an HMAC bound to its own DID, and waits; the owner's
 * running daemon admits it — node record, network key — and deletes the request. The secret
 * never reaches the DWN: only the verifier (encrypted to the owner) and per-device proofs do.
 */
import { randomBytes } from 'node:crypto';
import { DwnError, MeshdError, UsageError } from '../errors.js';
import { firstLanAddress, isLocalOnlyHost } from '../util/local-address.js';
import { encryptJson } from './crypto.js';
import { Keyring } from './keyring.js';
import { localNodeInfo } from './device-records.js';
import { requireJoinedNetwork, type JoinedNetwork } from './local-state.js';
import { memberRecords } from './model.js';
import { addPeersIn } from './peer-ops.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI } from './protocol.js';
import { validateRecord, type InviteRecord } from './records.js';
import { formatInvite, inviteVerifier, joinProof, proofMatches, SECRET_BYTES, signGrant, type Invite } from './invite-token.js';
import { checkMemberJoin, memberDeviceCount, memberDevicesInvite, memberInvitesOff, noteGrantUse, setMemberDevices } from './member-devices.js';
import { NetworkSession, networkDir, openDwn, requireOwner, x25519OfDid, type ControlContext } from './session.js';
import { compareText } from '../util/compare.js';

export { formatInvite, inviteVerifier, joinProof, looksLikeInvite, parseInvite, type Invite } from './invite-token.js';

/** A duration such as 90s, 30m, 24h, 7d. */
export function parseDuration(s: string): number {
  const m = /^(\d{1,6})(s|m|h|d)$/.exec(s.trim());
  if (!m) throw new UsageError(`"${s}" is not a duration`, { hint: 'use e.g. 30m, 24h or 7d' });
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/**
 * The DWN endpoint another machine should use: the network's announced endpoint, else the
 * joined endpoint — with a loopback host (the embedded DWN) replaced by this machine's first
 * non-loopback IPv4 address.
 */
export function reachableEndpoint(joined: JoinedNetwork, announced: string | undefined): string {
  if (announced) return announced;
  const u = new URL(joined.endpoint);
  if (!isLocalOnlyHost(u.hostname)) return joined.endpoint;
  const ip = firstLanAddress();
  if (!ip) return joined.endpoint;
  u.hostname = ip;
  return u.toString().replace(/\/$/, '');
}

export interface CreateInviteOptions {
  member?: boolean;
  /** Default 24 h. */
  expiresInMs?: number;
  /** Default 1; null: any number until it expires. */
  uses?: number | null;
  label?: string;
  /** The DWN endpoint the invite names (default: the reachable one). */
  endpoint?: string;
}

export interface CreatedInvite {
  invite: string;
  id: string;
  role: 'node' | 'member';
  expiresAt: string;
  uses: number | null;
  endpoint: string;
  /** A member's invite: how many devices each member may bring without the owner's approval. */
  memberDevices?: number;
}

export async function createInvite(ctx: ControlContext, o: CreateInviteOptions = {}): Promise<CreatedInvite> {
  const joined = requireJoinedNetwork(networkDir(ctx));
  if (!joined.roles.includes('owner') && joined.roles.includes('member')) return createMemberInvite(ctx, joined, o);
  const s = await NetworkSession.open(ctx, { joined });
  try {
    requireOwner(s, 'invite devices');
    await s.load(o.member ? ['network', 'invite'] : ['network']);
    const net = s.network();
    // a person invited may bring devices of their own: the policy (and its record) exists first
    if (o.member && !memberDevicesInvite(s)) await setMemberDevices(s);
    const expiresAt = new Date(Date.now() + (o.expiresInMs ?? 24 * 3_600_000)).toISOString();
    const secret = new Uint8Array(randomBytes(SECRET_BYTES));
    const role = o.member ? 'member' : 'node';
    const uses = o.uses === undefined ? 1 : o.uses;
    const data: InviteRecord = {
      role,
      expiresAt,
      ...(uses !== null ? { uses } : {}),
      ...(o.label !== undefined ? { label: o.label } : {}),
      verifier: Buffer.from(inviteVerifier(secret)).toString('base64url'),
      used: [],
    };
    const ref = await s.writeNew('invite', data, { parentContextId: s.joined.networkId, recipients: s.acc.keyring.privateRecipients() });
    const endpoint = o.endpoint ?? reachableEndpoint(s.joined, net.data.anchorEndpoint);
    const invite = formatInvite({ endpoint, anchor: s.joined.anchor, networkId: s.joined.networkId, inviteId: ref.recordId, secret, role, expiresAt });
    return { invite, id: ref.recordId, role, expiresAt, uses, endpoint };
  } finally {
    await s.close();
  }
}

/**
 * A member invites one of its own devices: a grant signed with the member's key, hung off the
 * owner's "member devices" invite record. Nothing is written: the owner's daemon checks the
 * grant when the device asks (and admits it while the member is under the owner's limit).
 */
async function createMemberInvite(ctx: ControlContext, joined: JoinedNetwork, o: CreateInviteOptions): Promise<CreatedInvite> {
  if (o.member) throw new MeshdError('E_NOT_OWNER', 'only the network owner can invite people (--member)', { hint: 'invite your own devices with `meshd invite`' });
  const s = await NetworkSession.open(ctx, { joined, as: 'member' });
  try {
    await s.load(['keyDelivery', 'network', 'member']);
    const me = memberRecords(s.set, s.joined.networkId, s.joined.anchor).find((m) => m.data.did === s.me);
    if (!me || me.data.status !== 'active') throw new MeshdError('E_NOT_OWNER', 'this identity is not an active member of the network');
    const net = s.network();
    const gateway = net.data.memberDevices;
    if (!gateway) throw memberInvitesOff();
    const expiresAt = new Date(Date.now() + (o.expiresInMs ?? 24 * 3_600_000)).toISOString();
    const secret = new Uint8Array(randomBytes(SECRET_BYTES));
    const uses = o.uses === undefined ? 1 : o.uses;
    const nonce = randomBytes(12).toString('base64url');
    const grant = signGrant(ctx.profile.keys.edSeed, { networkId: s.joined.networkId, nonce, expiresAt, uses, verifier: inviteVerifier(secret) });
    const endpoint = o.endpoint ?? reachableEndpoint(s.joined, net.data.anchorEndpoint);
    const invite = formatInvite({ endpoint, anchor: s.joined.anchor, networkId: s.joined.networkId, inviteId: gateway.invite, secret, role: 'node', expiresAt, grant });
    return { invite, id: nonce, role: 'node', expiresAt, uses, endpoint, memberDevices: gateway.max };
  } finally {
    await s.close();
  }
}

/** `meshd network policy --member-devices N` (owner): how many devices each member may bring. */
export async function setMemberDevicesPolicy(ctx: ControlContext, max: number): Promise<{ memberDevices: number }> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'set the network policy');
    await s.load(['network', 'invite']);
    return { memberDevices: (await setMemberDevices(s, max)).max };
  } finally {
    await s.close();
  }
}

export interface InviteRow {
  id: string;
  role: 'node' | 'member';
  label: string | null;
  expiresAt: string;
  uses: number | null;
  used: { did: string; at: string }[];
  state: 'open' | 'used up' | 'expired';
}

function inviteState(r: InviteRecord, now: number): InviteRow['state'] {
  if (Date.parse(r.expiresAt) <= now) return 'expired';
  if (r.uses !== undefined && r.used.length >= r.uses) return 'used up';
  return 'open';
}

export async function listInvites(ctx: ControlContext): Promise<InviteRow[]> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'list invites');
    await s.load(['network', 'invite']);
    return inviteRows(s, Date.now());
  } finally {
    await s.close();
  }
}

/** The owner's invites in a session whose invite records are loaded (the daemon's, the CLI's). */
export function inviteRows(s: NetworkSession, now: number): InviteRow[] {
  return s.set.invite
    .filter((i) => i.author === s.me && i.parentContextId === s.joined.networkId && i.data.role !== 'memberDevices')
    .map((i) => ({
      id: i.recordId,
      role: i.data.role === 'member' ? ('member' as const) : ('node' as const),
      label: i.data.label ?? null,
      expiresAt: i.data.expiresAt,
      uses: i.data.uses ?? null,
      used: i.data.used,
      state: inviteState(i.data, now),
    }))
    .sort((a, b) => compareText(a.expiresAt, b.expiresAt));
}

/** Delete an invite (and any request under it): a copied invite line stops working at once. */
export async function revokeInvite(ctx: ControlContext, id: string): Promise<{ id: string }> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'revoke invites');
    await s.load(['network', 'invite']);
    return await revokeInviteIn(s, id);
  } finally {
    await s.close();
  }
}

/** revokeInvite in an owner session whose invite records are loaded (the daemon's). */
export async function revokeInviteIn(s: NetworkSession, id: string): Promise<{ id: string }> {
  requireOwner(s, 'revoke invites');
  const inv = s.set.invite.find((i) => (i.recordId === id || i.recordId.endsWith(id)) && i.data.role !== 'memberDevices');
  if (!inv || id.length < 8) throw new MeshdError('E_NO_NETWORK', `no invite ${id}`, { hint: 'see `meshd invite list`' });
  await s.client.delete(inv.recordId, { prune: true });
  s.forget(inv.recordId);
  return { id: inv.recordId };
}

export interface AdmitResult {
  did: string;
  inviteId: string;
  admitted: boolean;
  reason?: string;
  /** A member's device over the policy's limit: it waits for `meshd peer approve`. */
  pending?: boolean;
  /** The member who invited the device (a member's invite). */
  member?: string;
}

/**
 * The owner's daemon: admit every pending join request that proves a valid invite, refuse the
 * others; each request is deleted once decided. A member's device over the policy's limit is
 * neither: its request stays for `meshd peer approve`, reported once (`noted` remembers which).
 * Needs an owner session with everything loaded.
 */
export async function admitJoinRequests(s: NetworkSession, now = Date.now(), noted?: Set<string>): Promise<AdmitResult[]> {
  const out: AdmitResult[] = [];
  for (const r of [...s.set.joinRequest]) {
    const inv = s.set.invite.find((i) => i.contextId === r.parentContextId && i.author === s.joined.anchor);
    const did = r.data.did;
    const refuse = (reason: string) => out.push({ did, inviteId: inv?.recordId ?? '?', admitted: false, reason });
    if (!inv) refuse('no such invite');
    else if (r.author !== did) refuse('the request is not signed by the device it names');
    else if (inv.data.role === 'memberDevices') {
      const c = checkMemberJoin(s, inv, r, now);
      if (c.refusal !== undefined) refuse(c.refusal);
      else if (memberDeviceCount(s, c.grant.member, did, now) >= (s.network().data.memberDevices?.max ?? 0)) {
        if (!noted?.has(r.recordId)) out.push({ did, inviteId: inv.recordId, admitted: false, pending: true, member: c.grant.member, reason: 'the member has as many devices as the policy allows' });
        noted?.add(r.recordId);
        continue;
      } else {
        await addPeersIn(s, [did], { owner: c.grant.member });
        await noteGrantUse(s, inv, did, c.grant.nonce, now);
        out.push({ did, inviteId: inv.recordId, admitted: true, member: c.grant.member });
      }
    } else if (Date.parse(inv.data.expiresAt) <= now) refuse('the invite expired');
    else if (!proofMatches(new Uint8Array(Buffer.from(inv.data.verifier, 'base64url')), inv.recordId, did, r.data.proof)) refuse('the request does not prove the invite secret');
    else if (!inv.data.used.some((u) => u.did === did) && inv.data.uses !== undefined && inv.data.used.length >= inv.data.uses) refuse('the invite is used up');
    else {
      if (inv.data.role === 'member') {
        await addPeersIn(s, [did], { member: true });
        await addPeersIn(s, [did], { owner: did });
      } else {
        await addPeersIn(s, [did]);
      }
      if (!inv.data.used.some((u) => u.did === did)) {
        await s.update(inv, { ...inv.data, used: [...inv.data.used, { did, at: new Date(now).toISOString() }] }, s.acc.keyring.privateRecipients());
      }
      out.push({ did, inviteId: inv.recordId, admitted: true });
    }
    noted?.delete(r.recordId);
    await s.client.delete(r.recordId);
    s.forget(r.recordId);
  }
  return out;
}

export interface JoinByInviteOptions {
  hostname?: string;
  /** How long to wait for the owner's daemon (default 10 min). */
  timeoutMs?: number;
  /** Time between checks (default 250 ms for 20 s, then 1 s). */
  pollMs?: number;
}

/**
 * The joining device: ask to join under the invite, then wait until the owner's daemon has
 * added it (with progress while it waits). Resolves with the DWN endpoint to join through.
 */
export async function requestJoinByInvite(ctx: ControlContext, inv: Invite, o: JoinByInviteOptions = {}): Promise<void> {
  if (Date.parse(inv.expiresAt) <= Date.now()) {
    throw new MeshdError('E_NO_NETWORK', `this invite expired at ${inv.expiresAt}`, { hint: 'ask the owner for a new one (`meshd invite`)' });
  }
  const me = ctx.profile.did;
  if (me === inv.anchor) throw new UsageError('this device is the network owner: an invite is for other devices');
  const dwn = await openDwn(ctx, inv.endpoint, false);
  const client = dwn.client(inv.anchor);
  const base = { protocol: PROTOCOL_URI, contextId: inv.networkId, recipient: me };
  const admitted = async () => (await client.query({ ...base, protocolPath: PATHS.node })).length > 0;
  if (await admitted()) return;
  const verifier = inviteVerifier(inv.secret);
  const data = validateRecord(
    'joinRequest',
    {
      did: me,
      hostname: o.hostname ?? localNodeInfo().hostname,
      proof: Buffer.from(joinProof(verifier, inv.inviteId, me)).toString('base64url'),
      ...(inv.grant !== undefined ? { grant: inv.grant } : {}),
    },
    'write',
  );
  const recipients = new Keyring(ctx.profile.keys).privateRecipients(x25519OfDid(inv.anchor));
  try {
    await client.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS.joinRequest,
      data: await encryptJson(data, recipients),
      dataFormat: DATA_FORMAT,
      parentContextId: `${inv.networkId}/${inv.inviteId}`,
    });
  } catch (e) {
    if (e instanceof DwnError && (e.status === 400 || e.status === 401 || e.status === 404)) {
      throw new MeshdError('E_NO_NETWORK', 'this invite was revoked (or belongs to another network)', { hint: 'ask the owner for a new one (`meshd invite`)', cause: e });
    }
    throw e;
  }
  ctx.progress?.(
    inv.grant !== undefined
      ? `asked ${inv.endpoint} to join; waiting for the owner's meshd to admit this device (or, past the owner's limit of devices per member, for \`meshd peer approve\`)…`
      : `asked ${inv.endpoint} to join; waiting for the owner's meshd to admit this device…`,
  );
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? 600_000;
  // quick checks while the owner's daemon is likely admitting this device, then every second
  const pollMs = (elapsed: number) => o.pollMs ?? (elapsed < 20_000 ? 250 : 1000);
  let lastNote = started;
  const mine = { protocol: PROTOCOL_URI, protocolPath: PATHS.joinRequest, author: me };
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs(Date.now() - started)));
    if (await admitted()) return;
    // the owner deletes a request once decided: gone without admission means refused
    const pending = await client.query(mine).catch(() => undefined);
    if (pending !== undefined && pending.length === 0) {
      throw new MeshdError('E_NO_NETWORK', 'the owner refused this invite: it is used up, expired or revoked', { hint: 'ask the owner for a new one (`meshd invite`)' });
    }
    const now = Date.now();
    if (now - started > timeoutMs) {
      throw new MeshdError('E_TIMEOUT', `the owner's meshd did not admit this device within ${Math.round(timeoutMs / 1000)} s`, {
        hint: 'the owner must be running `meshd up`; run this command again to keep waiting',
      });
    }
    if (now - lastNote >= 15_000) {
      lastNote = now;
      ctx.progress?.(`still waiting for the owner's meshd (${Math.round((now - started) / 1000)} s); it admits this device as soon as it runs`);
    }
  }
}

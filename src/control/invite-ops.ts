/**
 * One-command invites. The owner writes an invite record (readable by the owner only) holding
 * a verifier derived from a fresh secret, and prints one line: `meshd up <invite>`. The invite
 * carries the DWN endpoint, the owner, the network, the invite's record id, its expiry and the
 * secret. The joining device writes a join request under the invite (anyone may, knowing the
 * invite's id) proving the secret with an HMAC bound to its own DID, and waits; the owner's
 * running daemon admits it — node record, network key — and deletes the request. The secret
 * never reaches the DWN: only the verifier (encrypted to the owner) and per-device proofs do.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { canonicalDid, formatDidJwk, parseDidJwk } from '../identity/did-jwk.js';
import { DwnError, MeshdError, UsageError } from '../errors.js';
import { encryptJson } from './crypto.js';
import { Keyring } from './keyring.js';
import { localNodeInfo } from './device-records.js';
import type { JoinedNetwork } from './local-state.js';
import { addPeersIn } from './peer-ops.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI } from './protocol.js';
import type { Decoded } from './reader.js';
import { validateRecord, type InviteRecord } from './records.js';
import { NetworkSession, openDwn, requireOwner, x25519OfDid, type ControlContext } from './session.js';

const TOKEN_PREFIX = 'meshd-invite-v1.';
const SECRET_BYTES = 16;

/** What an invite line carries. */
export interface Invite {
  endpoint: string;
  anchor: string;
  networkId: string;
  /** The invite record's id. */
  inviteId: string;
  secret: Uint8Array;
  role: 'node' | 'member';
  expiresAt: string;
}

/** The one-line invite text: a prefix and base64url JSON (short keys; the owner by its key). */
export function formatInvite(i: Invite): string {
  const o = {
    e: i.endpoint,
    o: Buffer.from(parseDidJwk(i.anchor)).toString('base64url'),
    n: i.networkId,
    i: i.inviteId,
    s: Buffer.from(i.secret).toString('base64url'),
    r: i.role === 'member' ? 'm' : 'n',
    x: i.expiresAt,
  };
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(o)).toString('base64url');
}

export function looksLikeInvite(s: string): boolean {
  return s.startsWith(TOKEN_PREFIX);
}

/** Parse an invite line; a UsageError says what is wrong with it. */
export function parseInvite(text: string): Invite {
  const bad = (why: string) => new UsageError(`this is not a meshd invite (${why})`, { hint: 'copy the whole line `meshd invite` printed' });
  const t = text.trim();
  if (!t.startsWith(TOKEN_PREFIX) || t.length > 2048) throw bad('it should start with meshd-invite-v1.');
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(t.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('it is cut or damaged');
  }
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '');
  let endpoint: URL;
  try {
    endpoint = new URL(str('e'));
  } catch {
    throw bad('no DWN endpoint');
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw bad('no DWN endpoint');
  const key = Buffer.from(str('o'), 'base64url');
  const secret = Buffer.from(str('s'), 'base64url');
  if (key.length !== 32 || secret.length !== SECRET_BYTES) throw bad('it is cut or damaged');
  if (!/^[A-Za-z0-9]{20,100}$/.test(str('n')) || !/^[A-Za-z0-9]{20,100}$/.test(str('i'))) throw bad('it is cut or damaged');
  if (Number.isNaN(Date.parse(str('x')))) throw bad('no expiry');
  return {
    endpoint: str('e'),
    anchor: canonicalDid(formatDidJwk(new Uint8Array(key))),
    networkId: str('n'),
    inviteId: str('i'),
    secret: new Uint8Array(secret),
    role: str('r') === 'm' ? 'member' : 'node',
    expiresAt: str('x'),
  };
}

/** The key a join proof is made with: derived from the secret, stored (encrypted) by the owner. */
export function inviteVerifier(secret: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, Buffer.alloc(0), Buffer.from('meshd/invite-verifier/v1'), 32));
}

/** HMAC-SHA-256 under the verifier over the invite id and the joining device's DID. */
export function joinProof(verifier: Uint8Array, inviteId: string, did: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', verifier).update(`meshd/join/v1|${inviteId}|${did}`).digest());
}

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
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && u.hostname !== '[::1]') return joined.endpoint;
  const ip = firstLanAddress();
  if (!ip) return joined.endpoint;
  u.hostname = ip;
  return u.toString().replace(/\/$/, '');
}

function firstLanAddress(): string | undefined {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (name.startsWith('meshd') || !list) continue;
    for (const a of list) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  return undefined;
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
}

export async function createInvite(ctx: ControlContext, o: CreateInviteOptions = {}): Promise<CreatedInvite> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'invite devices');
    await s.load(['network']);
    const net = s.network();
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
    const now = Date.now();
    return s.set.invite
      .filter((i) => i.author === s.me && i.parentContextId === s.joined.networkId)
      .map((i) => ({
        id: i.recordId,
        role: i.data.role,
        label: i.data.label ?? null,
        expiresAt: i.data.expiresAt,
        uses: i.data.uses ?? null,
        used: i.data.used,
        state: inviteState(i.data, now),
      }))
      .sort((a, b) => a.expiresAt.localeCompare(b.expiresAt));
  } finally {
    await s.close();
  }
}

/** Delete an invite (and any request under it): a copied invite line stops working at once. */
export async function revokeInvite(ctx: ControlContext, id: string): Promise<{ id: string }> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'revoke invites');
    await s.load(['network', 'invite']);
    const inv = s.set.invite.find((i) => i.recordId === id || i.recordId.endsWith(id));
    if (!inv || id.length < 8) throw new MeshdError('E_NO_NETWORK', `no invite ${id}`, { hint: 'see `meshd invite list`' });
    await s.client.delete(inv.recordId, { prune: true });
    return { id: inv.recordId };
  } finally {
    await s.close();
  }
}

export interface AdmitResult {
  did: string;
  inviteId: string;
  admitted: boolean;
  reason?: string;
}

/**
 * The owner's daemon: admit every pending join request that proves a valid invite, refuse the
 * others; each request is deleted once decided. Needs an owner session with everything loaded.
 */
export async function admitJoinRequests(s: NetworkSession, now = Date.now()): Promise<AdmitResult[]> {
  const out: AdmitResult[] = [];
  for (const r of [...s.set.joinRequest]) {
    const inv = s.set.invite.find((i) => i.contextId === r.parentContextId && i.author === s.joined.anchor);
    const did = r.data.did;
    const refuse = (reason: string) => out.push({ did, inviteId: inv?.recordId ?? '?', admitted: false, reason });
    if (!inv) refuse('no such invite');
    else if (r.author !== did) refuse('the request is not signed by the device it names');
    else if (Date.parse(inv.data.expiresAt) <= now) refuse('the invite expired');
    else if (!proofMatches(inv, r.data.proof, did)) refuse('the request does not prove the invite secret');
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
    await s.client.delete(r.recordId);
    s.forget(r.recordId);
  }
  return out;
}

function proofMatches(inv: Decoded<'invite'>, proof: string, did: string): boolean {
  const want = joinProof(new Uint8Array(Buffer.from(inv.data.verifier, 'base64url')), inv.recordId, did);
  const got = Buffer.from(proof, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}

export interface JoinByInviteOptions {
  hostname?: string;
  /** How long to wait for the owner's daemon (default 10 min). */
  timeoutMs?: number;
  /** Time between checks (default 1 s). */
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
  const data = validateRecord('joinRequest', { did: me, hostname: o.hostname ?? localNodeInfo().hostname, proof: Buffer.from(joinProof(verifier, inv.inviteId, me)).toString('base64url') }, 'write');
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
  ctx.progress?.(`asked ${inv.endpoint} to join; waiting for the owner's meshd to admit this device…`);
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? 600_000;
  const pollMs = o.pollMs ?? 1000;
  let lastNote = started;
  const mine = { protocol: PROTOCOL_URI, protocolPath: PATHS.joinRequest, author: me };
  for (;;) {
    await new Promise((r) => setTimeout(r, pollMs));
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

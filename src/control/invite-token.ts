/**
 * The text of an invite line and the proofs made with it, with no DWN access: what the joining
 * device, the owner's daemon and `peer approve` all check.
 *
 * - An invite line: a prefix and base64url JSON (short keys; the owner by its key).
 * - The verifier: a key derived from the line's secret; a join proof is an HMAC under it over
 *   the invite record's id and the joining device's DID.
 * - A member's grant: a member invites its own devices with a line that hangs off the owner's
 *   "member devices" invite record and carries a grant the member signed (its key, a nonce, the
 *   expiry, the uses and the verifier of the line's secret). The owner's daemon checks the
 *   signature against the member's DID, the member's standing and its own policy.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { canonicalDid, formatDidJwk, parseDidJwk } from '../identity/did-jwk.js';
import { ed25519PublicFromSeed, ed25519Sign, ed25519Verify } from '../identity/keys.js';
import { UsageError } from '../errors.js';

const TOKEN_PREFIX = 'meshd-invite-v1.';
export const SECRET_BYTES = 16;
const GRANT_CONTEXT = 'meshd/member-invite/v1|';

/** What an invite line carries. */
export interface Invite {
  endpoint: string;
  anchor: string;
  networkId: string;
  /** The invite record's id (for a member's invite: the owner's "member devices" record). */
  inviteId: string;
  secret: Uint8Array;
  role: 'node' | 'member';
  expiresAt: string;
  /** A member's signed grant (a member inviting its own device). */
  grant?: string;
}

export function formatInvite(i: Invite): string {
  const o = {
    e: i.endpoint,
    o: Buffer.from(parseDidJwk(i.anchor)).toString('base64url'),
    n: i.networkId,
    i: i.inviteId,
    s: Buffer.from(i.secret).toString('base64url'),
    r: i.role === 'member' ? 'm' : 'n',
    x: i.expiresAt,
    ...(i.grant !== undefined ? { g: i.grant } : {}),
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
  if (!t.startsWith(TOKEN_PREFIX) || t.length > 4096) throw bad('it should start with meshd-invite-v1.');
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(t.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('it is cut or damaged');
  }
  if (typeof o !== 'object' || o === null) throw bad('it is cut or damaged');
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
  const grant = str('g');
  if (grant !== '' && !readGrant(grant)) throw bad('its member grant is damaged');
  return {
    endpoint: str('e'),
    anchor: canonicalDid(formatDidJwk(new Uint8Array(key))),
    networkId: str('n'),
    inviteId: str('i'),
    secret: new Uint8Array(secret),
    role: str('r') === 'm' ? 'member' : 'node',
    expiresAt: str('x'),
    ...(grant !== '' ? { grant } : {}),
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

/** Whether `proof` (base64url) is the join proof of `did` under `verifier` for `inviteId`. */
export function proofMatches(verifier: Uint8Array, inviteId: string, did: string, proof: string): boolean {
  const want = joinProof(verifier, inviteId, did);
  const got = Buffer.from(proof, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** What a member grants: its devices may join under the owner's "member devices" invite. */
export interface MemberGrant {
  networkId: string;
  /** The member's DID (canonical). */
  member: string;
  /** Tells this grant's uses apart from the member's other grants (base64url). */
  nonce: string;
  expiresAt: string;
  /** null: any number until it expires. */
  uses: number | null;
  verifier: Uint8Array;
}

/** The grant a member signs with its identity key: base64url JSON, a dot, the signature. */
export function signGrant(edSeed: Uint8Array, g: Omit<MemberGrant, 'member'>): string {
  const payload = Buffer.from(
    JSON.stringify({
      n: g.networkId,
      m: Buffer.from(ed25519PublicFromSeed(edSeed)).toString('base64url'),
      k: g.nonce,
      x: g.expiresAt,
      u: g.uses ?? 0,
      v: Buffer.from(g.verifier).toString('base64url'),
    }),
  ).toString('base64url');
  const sig = ed25519Sign(edSeed, Buffer.from(GRANT_CONTEXT + payload));
  return `${payload}.${Buffer.from(sig).toString('base64url')}`;
}

/** A grant whose signature verifies against the member key it names; undefined otherwise. */
export function readGrant(text: string): MemberGrant | undefined {
  if (text.length > 1024) return undefined;
  const [payload, sig, ...rest] = text.split('.');
  if (!payload || !sig || rest.length > 0) return undefined;
  try {
    const o = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const key = Buffer.from(String(o.m), 'base64url');
    const verifier = Buffer.from(String(o.v), 'base64url');
    const uses = o.u;
    if (key.length !== 32 || verifier.length !== 32 || typeof o.n !== 'string' || typeof o.k !== 'string' || typeof o.x !== 'string') return undefined;
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(o.k) || Number.isNaN(Date.parse(o.x)) || typeof uses !== 'number' || !Number.isInteger(uses) || uses < 0 || uses > 10_000) return undefined;
    if (!ed25519Verify(new Uint8Array(key), Buffer.from(GRANT_CONTEXT + payload), Buffer.from(sig, 'base64url'))) return undefined;
    return { networkId: o.n, member: canonicalDid(formatDidJwk(new Uint8Array(key))), nonce: o.k, expiresAt: o.x, uses: uses === 0 ? null : uses, verifier: new Uint8Array(verifier) };
  } catch {
    return undefined;
  }
}

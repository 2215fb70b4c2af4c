/**
 * did:jwk for Ed25519 keys. Parsing accepts any member order and extra members (kid, alg, use)
 * because other implementations produce them; DIDs are compared by their key, never by text.
 */
import { DidError } from '../errors.js';

const PREFIX = 'did:jwk:';
/** DIDs longer than this are refused before decoding (a normal Ed25519 did:jwk is ~90 chars). */
const MAX_DID_LENGTH = 2048;
const B64URL = /^[A-Za-z0-9_-]+$/;

export interface Ed25519Jwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}

/** Format the canonical did:jwk of an Ed25519 public key: members in lexicographic order. */
export function formatDidJwk(edPublic: Uint8Array): string {
  if (edPublic.length !== 32) throw new DidError('E_DID_INVALID', 'Ed25519 public key must be 32 bytes');
  const jwk = { crv: 'Ed25519', kty: 'OKP', x: Buffer.from(edPublic).toString('base64url') };
  return PREFIX + Buffer.from(JSON.stringify(jwk)).toString('base64url');
}

/** Parse a did:jwk (optionally with a #fragment) and return its 32-byte Ed25519 public key. */
export function parseDidJwk(did: string): Uint8Array {
  if (typeof did !== 'string') throw new DidError('E_DID_INVALID', 'DID must be a string');
  if (did.length > MAX_DID_LENGTH) throw new DidError('E_DID_INVALID', 'DID is too long');
  if (!did.startsWith(PREFIX)) throw new DidError('E_DID_INVALID', `not a did:jwk: ${abbreviate(did)}`);
  const hash = did.indexOf('#');
  const encoded = did.slice(PREFIX.length, hash === -1 ? undefined : hash);
  if (encoded.length === 0 || !B64URL.test(encoded)) {
    throw new DidError('E_DID_INVALID', `did:jwk is not base64url: ${abbreviate(did)}`);
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    throw new DidError('E_DID_INVALID', `did:jwk does not hold JSON: ${abbreviate(did)}`);
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    throw new DidError('E_DID_INVALID', `did:jwk does not hold a JWK object: ${abbreviate(did)}`);
  }
  const o = jwk as Record<string, unknown>;
  if (o.kty !== 'OKP' || o.crv !== 'Ed25519') {
    throw new DidError('E_DID_INVALID', `did:jwk is not an Ed25519 key (kty=${String(o.kty)}, crv=${String(o.crv)})`);
  }
  if ('d' in o) throw new DidError('E_DID_INVALID', 'did:jwk contains a private key');
  if (typeof o.x !== 'string' || !B64URL.test(o.x)) throw new DidError('E_DID_INVALID', 'did:jwk has no valid "x"');
  const x = Buffer.from(o.x, 'base64url');
  if (x.length !== 32 || x.toString('base64url') !== o.x) {
    throw new DidError('E_DID_INVALID', 'did:jwk "x" is not a 32-byte key');
  }
  return new Uint8Array(x);
}

/** True when two DIDs name the same key (did:jwk) or are the same string (other methods). */
export function sameDid(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return Buffer.from(parseDidJwk(a)).equals(Buffer.from(parseDidJwk(b)));
  } catch {
    return false;
  }
}

/** Canonical form of a did:jwk (for use as a map key); other DIDs are returned unchanged. */
export function canonicalDid(did: string): string {
  if (!did.startsWith(PREFIX)) return did;
  return formatDidJwk(parseDidJwk(did));
}

export function abbreviate(did: string, keep = 24): string {
  return did.length <= keep * 2 + 3 ? did : `${did.slice(0, keep)}…${did.slice(-8)}`;
}

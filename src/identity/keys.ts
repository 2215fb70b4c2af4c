/**
 * Device keys: one Ed25519 key per device; the X25519 key used by WireGuard and for record
 * encryption is derived from it, so there is exactly one secret to keep.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { DidError } from '../errors.js';
import { ed25519PublicToX25519 } from './montgomery.js';

export interface DeviceKeys {
  /** 32-byte Ed25519 seed (the private key). */
  readonly edSeed: Uint8Array;
  /** 32-byte Ed25519 public key. */
  readonly edPublic: Uint8Array;
  /** 32-byte X25519 private key (clamped), the WireGuard private key. */
  readonly xPrivate: Uint8Array;
  /** 32-byte X25519 public key, the WireGuard public key. */
  readonly xPublic: Uint8Array;
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export function generateEd25519Seed(): Uint8Array {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.d as string, 'base64url'));
}

export function ed25519PublicFromSeed(seed: Uint8Array): Uint8Array {
  const pub = createPublicKey(ed25519PrivateKeyObject(seed)).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(pub.x as string, 'base64url'));
}

/** X25519 private key = SHA-512(seed)[0..32], clamped (RFC 7748 section 5). */
export function x25519PrivateFromSeed(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new RangeError('Ed25519 seed must be 32 bytes');
  const h = createHash('sha512').update(seed).digest().subarray(0, 32);
  const k = new Uint8Array(h);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/**
 * X25519 public key from an Ed25519 public key through the birational map u = (1+y)/(1−y).
 * Throws DidError for bytes that are not a point on the curve.
 */
export function x25519PublicFromEd25519(edPublic: Uint8Array): Uint8Array {
  if (edPublic.length !== 32) throw new DidError('E_DID_INVALID', 'Ed25519 public key must be 32 bytes');
  try {
    return ed25519PublicToX25519(edPublic);
  } catch (cause) {
    throw new DidError('E_DID_INVALID', 'Ed25519 public key is not a valid curve point', { cause });
  }
}

export function x25519PublicFromPrivate(xPrivate: Uint8Array): Uint8Array {
  const pub = createPublicKey(x25519PrivateKeyObject(xPrivate)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(pub.subarray(pub.length - 32));
}

export function deriveDeviceKeys(edSeed: Uint8Array): DeviceKeys {
  const edPublic = ed25519PublicFromSeed(edSeed);
  const xPrivate = x25519PrivateFromSeed(edSeed);
  const xPublic = x25519PublicFromEd25519(edPublic);
  return { edSeed, edPublic, xPrivate, xPublic };
}

export function ed25519PrivateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function ed25519PublicKeyObject(pub: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function x25519PrivateKeyObject(priv: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKeyObject(pub: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function ed25519Sign(seed: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, data, ed25519PrivateKeyObject(seed)));
}

export function ed25519Verify(pub: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  return verify(null, data, ed25519PublicKeyObject(pub), signature);
}

/** Base64 as `wg` prints keys. */
export function wgKeyToBase64(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

export function wgKeyFromBase64(s: string): Uint8Array {
  const b = Buffer.from(s, 'base64');
  if (b.length !== 32 || b.toString('base64') !== s) throw new RangeError(`not a WireGuard key: ${s}`);
  return new Uint8Array(b);
}

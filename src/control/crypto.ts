/**
 * Record encryption (spec 5.4): JWE JSON serialisation, `alg` ECDH-ES+A256KW, `enc` A256GCM,
 * over X25519 keys, through `jose`.
 *
 * Key hierarchy: HKDF-SHA-256 from the owner's X25519 private key, one step per path segment
 * (salt empty, info = the segment): ["protocolPath", <protocol URI>, "network", <networkId>,
 * "epoch", <n>] gives the network key of epoch n (32 bytes, used as an X25519 private key).
 *
 * Each recipient carries a `kid` in its per-recipient header so a reader knows which of its keys
 * to try: `net:<epoch>` for a network key, `x25519:<base64url public key>` for a device key.
 */
import { createPublicKey, hkdfSync } from 'node:crypto';
import { flattenedDecrypt, GeneralEncrypt, type FlattenedJWE, type GeneralJWE } from 'jose';
import { MeshdError } from '../errors.js';
import { x25519PrivateKeyObject, x25519PublicKeyObject } from '../identity/keys.js';
import { PROTOCOL_URI } from './protocol.js';

const ENC = 'A256GCM';
const ALG = 'ECDH-ES+A256KW';
const encoder = new TextEncoder();

/** One HKDF-SHA-256 step per segment, salt empty, info = the segment; 32 bytes out. */
export function deriveKeyPath(root: Uint8Array, path: readonly string[]): Uint8Array {
  let key = Buffer.from(root);
  for (const segment of path) {
    key = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from(segment, 'utf8'), 32));
  }
  return new Uint8Array(key);
}

export function networkKeyPath(networkId: string, epoch: number, protocol = PROTOCOL_URI): string[] {
  return ['protocolPath', protocol, 'network', networkId, 'epoch', String(epoch)];
}

/** The network private key of `epoch` (X25519, 32 bytes), derived from the owner's root key. */
export function deriveNetworkKey(ownerXPrivate: Uint8Array, networkId: string, epoch: number): Uint8Array {
  return deriveKeyPath(ownerXPrivate, networkKeyPath(networkId, epoch));
}

export function x25519PublicOf(priv: Uint8Array): Uint8Array {
  const der = createPublicKey(x25519PrivateKeyObject(priv)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

export function networkKid(epoch: number): string {
  return `net:${epoch}`;
}

export function deviceKid(xPublic: Uint8Array): string {
  return `x25519:${Buffer.from(xPublic).toString('base64url')}`;
}

/** The epoch a `net:N` kid names, or undefined. */
export function epochOfKid(kid: unknown): number | undefined {
  if (typeof kid !== 'string') return undefined;
  const m = /^net:(\d{1,7})$/.exec(kid);
  return m ? Number(m[1]) : undefined;
}

export interface JweRecipient {
  kid: string;
  /** X25519 public key. */
  publicKey: Uint8Array;
}

/** Encrypt a JSON value to every recipient; returns the JWE (JSON serialisation) as bytes. */
export async function encryptJson(value: unknown, recipients: readonly JweRecipient[]): Promise<Uint8Array> {
  if (recipients.length === 0) throw new RangeError('encryptJson needs at least one recipient');
  const enc = new GeneralEncrypt(encoder.encode(JSON.stringify(value))).setProtectedHeader({ enc: ENC });
  for (const r of recipients) {
    enc.addRecipient(x25519PublicKeyObject(r.publicKey)).setUnprotectedHeader({ alg: ALG, kid: r.kid });
  }
  const jwe = await enc.encrypt();
  return encoder.encode(JSON.stringify(jwe));
}

/** Why a record could not be decrypted: counted separately by readers. */
export type DecryptFailure = 'malformed' | 'unknown-epoch' | 'no-key' | 'failed';

export class DecryptError extends MeshdError {
  readonly reason: DecryptFailure;
  readonly epoch: number | undefined;
  constructor(reason: DecryptFailure, message: string, epoch?: number) {
    super('E_DECRYPT', message);
    this.reason = reason;
    this.epoch = epoch;
  }
}

/** The private keys a reader holds, by kid. */
export type KeyLookup = (kid: string) => Uint8Array | undefined;

export interface Decrypted {
  text: string;
  /** The kid of the recipient entry that opened it. */
  kid: string;
  /** The network epoch the record was written under (from the `net:` recipient), if any. */
  epoch: number | undefined;
}

function parseJwe(bytes: Uint8Array): GeneralJWE {
  if (bytes.length > 1_000_000) throw new DecryptError('malformed', 'record data is too large');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new DecryptError('malformed', 'record data is not a JWE (not JSON)');
  }
  const o = v as Partial<GeneralJWE>;
  if (
    typeof o !== 'object' || o === null || typeof o.ciphertext !== 'string' || typeof o.iv !== 'string' ||
    typeof o.tag !== 'string' || typeof o.protected !== 'string' || !Array.isArray(o.recipients) ||
    o.recipients.length === 0 || o.recipients.length > 16
  ) {
    throw new DecryptError('malformed', 'record data is not a JWE in JSON serialisation');
  }
  return o as GeneralJWE;
}

/** The network epoch a JWE is encrypted under, without decrypting it. */
export function jweEpoch(bytes: Uint8Array): number | undefined {
  try {
    const jwe = parseJwe(bytes);
    for (const r of jwe.recipients) {
      const e = epochOfKid(r.header?.kid);
      if (e !== undefined) return e;
    }
  } catch {
    // not a JWE
  }
  return undefined;
}

/** Decrypt a JWE with whichever of the reader's keys it names. Throws DecryptError. */
export async function decryptJwe(bytes: Uint8Array, keys: KeyLookup): Promise<Decrypted> {
  const jwe = parseJwe(bytes);
  let epoch: number | undefined;
  let unknownEpoch: number | undefined;
  for (const r of jwe.recipients) {
    const e = epochOfKid(r.header?.kid);
    if (e !== undefined) epoch = e;
  }
  for (const r of jwe.recipients) {
    const kid = r.header?.kid;
    if (typeof kid !== 'string') continue;
    const priv = keys(kid);
    if (!priv) {
      const e = epochOfKid(kid);
      if (e !== undefined) unknownEpoch = e;
      continue;
    }
    const flat: FlattenedJWE = {
      protected: jwe.protected,
      iv: jwe.iv,
      ciphertext: jwe.ciphertext,
      tag: jwe.tag,
      ...(jwe.aad !== undefined ? { aad: jwe.aad } : {}),
      ...(jwe.unprotected !== undefined ? { unprotected: jwe.unprotected } : {}),
      ...(r.header !== undefined ? { header: r.header } : {}),
      ...(r.encrypted_key !== undefined ? { encrypted_key: r.encrypted_key } : {}),
    };
    try {
      const out = await flattenedDecrypt(flat, x25519PrivateKeyObject(priv), {
        keyManagementAlgorithms: [ALG],
        contentEncryptionAlgorithms: [ENC],
      });
      return { text: Buffer.from(out.plaintext).toString('utf8'), kid, epoch };
    } catch (e) {
      throw new DecryptError('failed', `record does not decrypt (${(e as { code?: string }).code ?? (e as Error).message})`, epoch);
    }
  }
  if (unknownEpoch !== undefined) {
    throw new DecryptError('unknown-epoch', `record is encrypted under network key epoch ${unknownEpoch}, which this device does not hold`, unknownEpoch);
  }
  throw new DecryptError('no-key', 'record is not encrypted to any key this device holds', epoch);
}

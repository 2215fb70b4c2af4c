/**
 * Record encryption: JWE JSON serialisation, `alg` ECDH-ES+A256KW, `enc` A256GCM,
 * over X25519 keys, through `jose`.
 *
 * Key hierarchy: HKDF-SHA-256 from the owner's X25519 private key, one step per path segment
 * (salt empty, info = the segment): ["protocolPath", <protocol URI>, "network", <networkId>,
 * "epoch", <n>] gives the network key of epoch n (32 bytes, used as an X25519 private key).
 *
 * Each recipient entry carries an opaque `kid`: `n:` + a hash of the network public key for the
 * network key of an epoch (readers map it to the epoch they hold), `d:` + random bytes for an
 * entry to one device's own key (that device tries its key on each). No key, epoch or device
 * appears in clear. Data is padded to size buckets before and after encryption.
 */
import { createDecipheriv, createHash, createPublicKey, diffieHellman, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { flattenedDecrypt, GeneralEncrypt, type FlattenedJWE, type GeneralJWE, type JWEHeaderParameters } from 'jose';
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

/** Prefix of a recipient entry opened by a network key; the rest names no key in clear. */
export const NETWORK_KID_PREFIX = 'n:';
/** Prefix of a recipient entry opened by one device's own key (its reader tries it). */
export const DIRECT_KID_PREFIX = 'd:';

/**
 * The kid of a network key's recipient entry: a hash of the network public key, which is never
 * published, so the operator learns only which records share a key, not whose key it is.
 */
export function networkKid(networkPublic: Uint8Array): string {
  const h = createHash('sha256').update('meshd/network-kid/v1').update(networkPublic).digest();
  return NETWORK_KID_PREFIX + h.subarray(0, 16).toString('base64url');
}

/** A fresh random kid for an entry to one device's key: unlinkable to the device. */
export function directKid(): string {
  return DIRECT_KID_PREFIX + randomBytes(16).toString('base64url');
}

export interface JweRecipient {
  kid: string;
  /** X25519 public key. */
  publicKey: Uint8Array;
}

/**
 * Sizes data is padded to, so that stored sizes say little about contents: the plaintext JSON
 * (inside the ciphertext) and the whole JWE text (what the DWN stores) each round up to the
 * next bucket with trailing spaces, which JSON ignores. The last JWE bucket stays under the
 * 30,000 bytes a query returns inline.
 */
export const PLAINTEXT_BUCKETS = [256, 512, 1024, 2048, 4096, 8192, 16_384, 20_000] as const;
export const JWE_BUCKETS = [1024, 2048, 4096, 8192, 16_384, 28_672] as const;

/** `text` padded with spaces to the smallest bucket that holds it (unchanged when none does). */
export function padToBucket(text: string, buckets: readonly number[]): string {
  const n = Buffer.byteLength(text);
  for (const b of buckets) if (n <= b) return text + ' '.repeat(b - n);
  return text;
}

/** Encrypt a JSON value to every recipient; returns the padded JWE (JSON serialisation) as bytes. */
export async function encryptJson(value: unknown, recipients: readonly JweRecipient[]): Promise<Uint8Array> {
  if (recipients.length === 0) throw new RangeError('encryptJson needs at least one recipient');
  const plain = padToBucket(JSON.stringify(value), PLAINTEXT_BUCKETS);
  const enc = new GeneralEncrypt(encoder.encode(plain)).setProtectedHeader({ enc: ENC });
  for (const r of recipients) {
    enc.addRecipient(x25519PublicKeyObject(r.publicKey)).setUnprotectedHeader({ alg: ALG, kid: r.kid });
  }
  const jwe = await enc.encrypt();
  return encoder.encode(padToBucket(JSON.stringify(jwe), JWE_BUCKETS));
}

/** Why a record could not be decrypted: counted separately by readers. */
export type DecryptFailure = 'malformed' | 'unknown-key' | 'no-key' | 'failed';

export class DecryptError extends MeshdError {
  readonly reason: DecryptFailure;
  constructor(reason: DecryptFailure, message: string) {
    super('E_DECRYPT', message);
    this.reason = reason;
  }
}

/** The keys a reader holds. */
export interface ReaderKeys {
  /** The network key and its epoch for a network kid, when this reader holds it. */
  network(kid: string): { epoch: number; key: Uint8Array } | undefined;
  /** This device's own X25519 private key (tried on every direct entry). */
  readonly selfPrivate: Uint8Array;
}

/**
 * Which recipient entry may open a record:
 * - 'network': only the single network-key entry, so every member reads the same plaintext
 *   whatever other entries the writer added (no equivocation between readers);
 * - 'direct': only entries to this device's own key (private records, and records it wrote);
 * - 'network-or-direct': the reader's own records, read back through its direct entry.
 */
export type DecryptVia = 'network' | 'direct' | 'network-or-direct';

export interface Decrypted {
  text: string;
  /** Which kind of entry opened it. */
  via: 'network' | 'direct';
  /** The epoch of the record's network-key entry, when the reader knows that key. */
  epoch: number | undefined;
  /** The record carries a network-key entry (member-readable). */
  networkEntry: boolean;
}

export type ParsedJwe = Omit<GeneralJWE, 'recipients'> & { recipients: Array<{ header?: JWEHeaderParameters; encrypted_key?: string }> };

function parseJwe(bytes: Uint8Array): ParsedJwe {
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
  return o as ParsedJwe;
}

function kidOf(r: ParsedJwe['recipients'][number]): string | undefined {
  const kid: unknown = r?.header?.kid;
  return typeof kid === 'string' ? kid : undefined;
}

async function openEntry(jwe: ParsedJwe, r: ParsedJwe['recipients'][number], key: Uint8Array): Promise<string> {
  const fast = openDirect(jwe, r, key);
  if (fast !== undefined) return fast;
  const flat: FlattenedJWE = {
    ciphertext: jwe.ciphertext,
    ...(jwe.protected !== undefined ? { protected: jwe.protected } : {}),
    ...(jwe.iv !== undefined ? { iv: jwe.iv } : {}),
    ...(jwe.tag !== undefined ? { tag: jwe.tag } : {}),
    ...(jwe.aad !== undefined ? { aad: jwe.aad } : {}),
    ...(jwe.unprotected !== undefined ? { unprotected: jwe.unprotected } : {}),
    ...(r.header !== undefined ? { header: r.header } : {}),
    ...(r.encrypted_key !== undefined ? { encrypted_key: r.encrypted_key } : {}),
  };
  const out = await flattenedDecrypt(flat, x25519PrivateKeyObject(key), {
    keyManagementAlgorithms: [ALG],
    contentEncryptionAlgorithms: [ENC],
  });
  return Buffer.from(out.plaintext).toString('utf8');
}

/** KeyObjects of the private keys held (network keys, this device's own), by their bytes. */
const privateKeys = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(key: Uint8Array): KeyObject {
  let k = privateKeys.get(key);
  if (k === undefined) {
    k = x25519PrivateKeyObject(key);
    privateKeys.set(key, k);
  }
  return k;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Header members the direct path knows; an entry with any other is left to jose. */
const DIRECT_HEADER: ReadonlySet<string> = new Set(['alg', 'enc', 'kid', 'epk', 'apu', 'apv']);
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

/** 32-bit big-endian length, then the bytes (RFC 7518 §4.6.2). */
function lengthPrefixed(b: Buffer): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
}

/**
 * An entry as meshd writes it (ECDH-ES+A256KW over X25519, A256GCM, no compression) opened with
 * node:crypto alone — what jose's flattenedDecrypt does for that one pair, without its WebCrypto
 * key imports and thread-pool round trips, several times the cost on every record read. Any
 * other entry gives undefined: jose opens (or refuses) it. Throws when the entry does not open.
 */
export function openDirect(jwe: ParsedJwe, r: ParsedJwe['recipients'][number], key: Uint8Array): string | undefined {
  if (typeof jwe.protected !== 'string' || jwe.unprotected !== undefined || !isObject(r.header)) return undefined;
  let prot: unknown;
  try {
    prot = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(prot)) return undefined;
  const header: Json = r.header as Json;
  for (const k of Object.keys(prot)) if (!DIRECT_HEADER.has(k) || k in header) return undefined;
  for (const k of Object.keys(header)) if (!DIRECT_HEADER.has(k)) return undefined;
  const h: Json = { ...prot, ...header };
  const epk = h.epk;
  if (h.alg !== ALG || h.enc !== ENC || !isObject(epk) || epk.kty !== 'OKP' || epk.crv !== 'X25519' || typeof epk.x !== 'string') return undefined;
  if (Object.keys(epk).some((k) => k !== 'kty' && k !== 'crv' && k !== 'x')) return undefined;
  if ((h.apu !== undefined && typeof h.apu !== 'string') || (h.apv !== undefined && typeof h.apv !== 'string')) return undefined;
  if (typeof r.encrypted_key !== 'string' || typeof jwe.iv !== 'string' || typeof jwe.tag !== 'string' || typeof jwe.ciphertext !== 'string') return undefined;
  if (jwe.aad !== undefined && typeof jwe.aad !== 'string') return undefined;
  const epkKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: epk.x }, format: 'jwk' });
  const z = diffieHellman({ privateKey: privateKeyObject(key), publicKey: epkKey });
  // Concat KDF, one SHA-256 round for a 256-bit key: counter, Z, AlgorithmID, PartyUInfo, PartyVInfo, SuppPubInfo
  const keyBits = Buffer.alloc(4);
  keyBits.writeUInt32BE(256);
  const kek = createHash('sha256')
    .update(Buffer.from([0, 0, 0, 1]))
    .update(z)
    .update(lengthPrefixed(Buffer.from(ALG, 'ascii')))
    .update(lengthPrefixed(Buffer.from((h.apu as string | undefined) ?? '', 'base64url')))
    .update(lengthPrefixed(Buffer.from((h.apv as string | undefined) ?? '', 'base64url')))
    .update(keyBits)
    .digest();
  const unwrap = createDecipheriv('id-aes256-wrap', kek, AES_KW_IV);
  const cek = Buffer.concat([unwrap.update(Buffer.from(r.encrypted_key, 'base64url')), unwrap.final()]);
  const iv = Buffer.from(jwe.iv, 'base64url');
  const tag = Buffer.from(jwe.tag, 'base64url');
  if (cek.length !== 32 || iv.length !== 12 || tag.length !== 16) throw new Error('JWE key, iv or tag has the wrong length');
  const gcm = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
  gcm.setAAD(Buffer.from(jwe.aad !== undefined ? `${jwe.protected}.${jwe.aad}` : jwe.protected, 'ascii'));
  gcm.setAuthTag(tag);
  return Buffer.concat([gcm.update(Buffer.from(jwe.ciphertext, 'base64url')), gcm.final()]).toString('utf8');
}

/** Decrypt a JWE through the entry `via` allows. Throws DecryptError. */
export async function decryptJwe(bytes: Uint8Array, keys: ReaderKeys, via: DecryptVia): Promise<Decrypted> {
  const jwe = parseJwe(bytes);
  const net = jwe.recipients.filter((r) => kidOf(r)?.startsWith(NETWORK_KID_PREFIX));
  // Two network entries could wrap two content keys: readers could be shown different data.
  if (net.length > 1) throw new DecryptError('malformed', 'record names more than one network key');
  const netEntry = net[0];
  const held = netEntry ? keys.network(kidOf(netEntry)!) : undefined;
  const epoch = held?.epoch;
  if (via !== 'network') {
    for (const r of jwe.recipients) {
      if (!kidOf(r)?.startsWith(DIRECT_KID_PREFIX)) continue;
      try {
        return { text: await openEntry(jwe, r, keys.selfPrivate), via: 'direct', epoch, networkEntry: netEntry !== undefined };
      } catch {
        // another device's entry (or a bad one): try the next
      }
    }
    if (via === 'direct') throw new DecryptError('no-key', 'record is not encrypted to this device');
  }
  if (!netEntry) throw new DecryptError('no-key', 'record is not encrypted to the network key');
  if (!held) throw new DecryptError('unknown-key', 'record is encrypted under a network key this device does not hold');
  try {
    return { text: await openEntry(jwe, netEntry, held.key), via: 'network', epoch, networkEntry: true };
  } catch (e) {
    throw new DecryptError('failed', `record does not decrypt (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
}

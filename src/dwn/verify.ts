/**
 * Client-side checks of records a DWN hands back: the message is well formed, its signature
 * verifies against the author's did:jwk, and the data is the data the author signed. A DWN
 * operator (or anyone in between) can then drop records but not forge or alter them.
 *
 * The checks are those dwn-sdk-js makes in `RecordsWrite.parse` and `authenticate`, done here
 * so that the Ed25519 signature is verified by node:crypto (OpenSSL) rather than the SDK's
 * pure-JS code, which cost several milliseconds per record. What differs from the SDK, always
 * in the stricter direction:
 *  - the signer must be a did:jwk Ed25519 key, the `kid` exactly `<did>#0` (what a did:jwk
 *    document names and what meshd's signer writes) and `alg` EdDSA;
 *  - base64url members must be canonical (no padding, no stray characters);
 *  - delegated grants (`authorDelegatedGrant`, `ownerDelegatedGrant`, `delegatedGrantId`) are
 *    refused: meshd never writes them, and honouring one means trusting a grant chain;
 *  - the descriptor must be a Records Write.
 * Nothing is cached but the imported public keys (when the caller passes PublicKeys): each call
 * does all the checks for the message it is given.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { MeshdError } from '../errors.js';
import { computeCid, computeDagPbCidFromBytes, UNIXFS_CHUNK_SIZE } from './cid.js';
import { parseDidJwk } from '../identity/did-jwk.js';
import { LruMap } from '../util/lru.js';

const B64URL = /^[A-Za-z0-9_-]*$/;
/** The only verification method a did:jwk document has. */
const DID_JWK_FRAGMENT = '#0';

/** Members the SDK's signature payload schemas allow (all strings); anything else is refused. */
const RECORDS_WRITE_PAYLOAD = new Set(['descriptorCid', 'recordId', 'contextId', 'attestationCid', 'encryptionCid', 'delegatedGrantId', 'permissionGrantId', 'protocolRole']);
const GENERIC_PAYLOAD = new Set(['descriptorCid', 'delegatedGrantId', 'permissionGrantId', 'protocolRole']);

/**
 * Ed25519 public keys imported for node:crypto, by their JWK `x` (a device's readers see the
 * same few signers again and again). Bounded, least recently used out first. Optional: a caller
 * without one imports each key anew.
 */
export class PublicKeys {
  private readonly map: LruMap<string, KeyObject>;
  constructor(max = 1024) {
    this.map = new LruMap(max);
  }

  get(x: string): KeyObject | undefined {
    return this.map.get(x);
  }

  set(x: string, key: KeyObject): void {
    if (!this.map.has(x)) this.map.set(x, key);
  }
}

/** A check failed; turned into a MeshdError naming the record by `verifyRecordsWriteMessage`. */
class Invalid extends Error {}

type Obj = Record<string, unknown>;

function isPlainObject(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Decode canonical unpadded base64url; throws Invalid otherwise. */
function b64url(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || !B64URL.test(s)) throw new Invalid(`${what} is not base64url`);
  const bytes = Buffer.from(s, 'base64url');
  if (bytes.toString('base64url') !== s) throw new Invalid(`${what} is not canonical base64url`);
  return bytes;
}

function b64urlJsonObject(s: unknown, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(b64url(s, what).toString('utf8'));
  } catch (e) {
    if (e instanceof Invalid) throw e;
    throw new Invalid(`${what} is not JSON`);
  }
  if (!isPlainObject(v)) throw new Invalid(`${what} is not a JSON object`);
  return v;
}

/** The payload of a General JWS, checked against one of the SDK's payload schemas. */
function signaturePayload(jws: Obj, allowed: ReadonlySet<string>, required: readonly string[], what: string): Obj {
  const payload = b64urlJsonObject(jws.payload, `${what} payload`);
  for (const [k, v] of Object.entries(payload)) {
    if (!allowed.has(k)) throw new Invalid(`${what} payload has an unexpected member "${k}"`);
    if (typeof v !== 'string') throw new Invalid(`${what} payload member "${k}" is not a string`);
  }
  for (const k of required) if (payload[k] === undefined) throw new Invalid(`${what} payload has no "${k}"`);
  if (payload.delegatedGrantId !== undefined) throw new Invalid(`${what} uses a delegated grant`);
  return payload;
}

/** The one signature entry of a General JWS (the SDK supports no more for authorization). */
function onlySignature(jws: unknown, what: string): { jws: Obj; entry: Obj } {
  if (!isPlainObject(jws)) throw new Invalid(`${what} is missing`);
  const sigs = jws.signatures;
  if (!Array.isArray(sigs) || sigs.length !== 1) throw new Invalid(`${what} must have exactly one signature`);
  const entry: unknown = sigs[0];
  if (!isPlainObject(entry)) throw new Invalid(`${what} signature entry is not an object`);
  return { jws, entry };
}

/**
 * Verify the signature entry against its payload with node:crypto; returns the signer DID
 * (the `kid` without its fragment, as the SDK reports it).
 */
function verifyJwsSignature(jws: Obj, entry: Obj, what: string, keys: PublicKeys | undefined): string {
  const header = b64urlJsonObject(entry.protected, `${what} protected header`);
  if (header.alg !== 'EdDSA') throw new Invalid(`${what} alg is ${JSON.stringify(header.alg)}, expected "EdDSA"`);
  const kid = header.kid;
  if (typeof kid !== 'string' || !kid.endsWith(DID_JWK_FRAGMENT)) throw new Invalid(`${what} kid is not <did:jwk>#0`);
  const did = kid.slice(0, -DID_JWK_FRAGMENT.length);
  if (did.includes('#')) throw new Invalid(`${what} kid is not <did:jwk>#0`);
  let x: string;
  try {
    x = Buffer.from(parseDidJwk(did)).toString('base64url');
  } catch (e) {
    throw new Invalid(`${what} kid: ${(e as Error).message}`);
  }
  const signature = b64url(entry.signature, `${what} signature`);
  if (signature.length !== 64) throw new Invalid(`${what} signature is not 64 bytes`);
  b64url(jws.payload, `${what} payload`);
  // The signing input is exactly the two base64url strings as sent.
  const input = Buffer.from(`${entry.protected as string}.${jws.payload as string}`, 'utf8');
  // Imported as a JWK: OpenSSL's DER (SPKI) decoder costs ten times as much per key.
  const publicKey = keys?.get(x) ?? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  keys?.set(x, publicKey);
  if (!cryptoVerify(null, input, publicKey, signature)) {
    throw new Invalid(`signature verification failed for ${did}`);
  }
  return did;
}

/** The SDK's URL normalization (scheme added when missing; no query, no fragment, no trailing slash). */
function isNormalizedUrl(url: unknown): boolean {
  if (typeof url !== 'string') return false;
  const full = /^[^:]+:(\/{2})?[^/].*/.test(url) ? url : `http://${url}`;
  let normalized: string;
  try {
    const u = new URL(full);
    u.search = '';
    u.hash = '';
    normalized = u.href.endsWith('/') ? u.href.slice(0, -1) : u.href;
  } catch {
    return false;
  }
  return normalized === url;
}

/** The timestamp pattern of the DWN's message schema (microseconds, UTC). */
const TIMESTAMP = /^(\d{4})-([0-1]\d)-([0-3]\d)T(?:([0-2]\d):([0-5]\d):([0-5]\d)|(23):(59):(60))\.\d{6}Z$/;

/**
 * True for a timestamp as DWN messages carry them: the schema's pattern and a real calendar
 * instant (the SDK parses with Temporal, ~50 µs a call; this accepts a subset of what it does:
 * a leap second only as 23:59:60, like the pattern).
 */
export function isDwnTimestamp(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const m = TIMESTAMP.exec(v);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = m[4] !== undefined ? [Number(m[4]), Number(m[5]), Number(m[6])] : [23, 59, 59];
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day && d.getUTCHours() === hour;
}

function timestamp(v: unknown, what: string): void {
  if (!isDwnTimestamp(v)) throw new Invalid(`${what} is not a valid timestamp`);
}

async function cidOf(v: unknown, what: string): Promise<string> {
  try {
    return await computeCid(v);
  } catch {
    throw new Invalid(`${what} cannot be encoded`);
  }
}

async function check(message: unknown, keys: PublicKeys | undefined): Promise<string> {
  if (!isPlainObject(message)) throw new Invalid('message is not an object');
  const descriptor = message.descriptor;
  if (!isPlainObject(descriptor)) throw new Invalid('message has no descriptor');
  if (descriptor.interface !== 'Records' || descriptor.method !== 'Write') throw new Invalid('message is not a RecordsWrite');
  const authorization = message.authorization;
  if (!isPlainObject(authorization)) throw new Invalid('message has no authorization');
  if (authorization.authorDelegatedGrant !== undefined || authorization.ownerDelegatedGrant !== undefined) {
    throw new Invalid('message uses a delegated grant');
  }
  if (typeof message.recordId !== 'string') throw new Invalid('message has no recordId');

  // Structure first (as RecordsWrite.parse), signatures after (as authenticate).
  const descriptorCid = await cidOf(descriptor, 'descriptor');
  const author = onlySignature(authorization.signature, 'authorization signature');
  const payload = signaturePayload(author.jws, RECORDS_WRITE_PAYLOAD, ['descriptorCid', 'recordId'], 'authorization signature');
  if (payload.descriptorCid !== descriptorCid) throw new Invalid('signed descriptorCid does not match the descriptor');

  let owner: { jws: Obj; entry: Obj } | undefined;
  if (authorization.ownerSignature !== undefined) {
    owner = onlySignature(authorization.ownerSignature, 'owner signature');
    const ownerPayload = signaturePayload(owner.jws, GENERIC_PAYLOAD, ['descriptorCid'], 'owner signature');
    if (ownerPayload.descriptorCid !== descriptorCid) throw new Invalid('owner-signed descriptorCid does not match the descriptor');
  }

  // Attestation: structure and link only; the SDK does not verify an attester's signature.
  if (message.attestation !== undefined) {
    const att = onlySignature(message.attestation, 'attestation');
    const attPayload = b64urlJsonObject(att.jws.payload, 'attestation payload');
    if (attPayload.descriptorCid !== descriptorCid) throw new Invalid('attested descriptorCid does not match the descriptor');
    if (Object.keys(attPayload).length > 1) throw new Invalid('attestation payload has members besides descriptorCid');
  }

  const authorDid = verifyJwsSignature(author.jws, author.entry, 'authorization signature', keys);
  if (owner) verifyJwsSignature(owner.jws, owner.entry, 'owner signature', keys);

  // The integrity checks of RecordsWrite.validateIntegrity.
  const entryId = await cidOf({ ...descriptor, author: authorDid }, 'entry id input');
  if (entryId === message.recordId) {
    // the initial write of a record
    if (descriptor.messageTimestamp !== descriptor.dateCreated) throw new Invalid('initial write: messageTimestamp differs from dateCreated');
    if (descriptor.protocol !== undefined && descriptor.parentId === undefined && message.contextId !== entryId) {
      throw new Invalid('contextId of a protocol root record is not its entry id');
    }
  }
  if (message.recordId !== payload.recordId) throw new Invalid('recordId does not match the signed recordId');
  if (message.contextId !== payload.contextId) throw new Invalid('contextId does not match the signed contextId');
  if (payload.attestationCid !== undefined && payload.attestationCid !== (await cidOf(message.attestation, 'attestation'))) {
    throw new Invalid('attestation does not match the signed attestationCid');
  }
  if (payload.encryptionCid !== undefined && payload.encryptionCid !== (await cidOf(message.encryption, 'encryption'))) {
    throw new Invalid('encryption does not match the signed encryptionCid');
  }
  if (descriptor.protocol !== undefined && !isNormalizedUrl(descriptor.protocol)) throw new Invalid('protocol URI is not normalized');
  if (descriptor.schema !== undefined && !isNormalizedUrl(descriptor.schema)) throw new Invalid('schema URI is not normalized');
  timestamp(descriptor.messageTimestamp, 'messageTimestamp');
  timestamp(descriptor.dateCreated, 'dateCreated');
  if (descriptor.datePublished) timestamp(descriptor.datePublished, 'datePublished');
  return authorDid;
}

function recordName(message: unknown): string {
  const id = isPlainObject(message) ? message.recordId : undefined;
  return typeof id === 'string' && id.length <= 100 ? id : '?';
}

/** Verify a RecordsWrite's structure and signature; returns the author DID. Throws E_RECORD_INVALID. */
export async function verifyRecordsWriteMessage(message: RecordsWriteMessage, keys?: PublicKeys): Promise<string> {
  try {
    return await check(message, keys);
  } catch (e) {
    const why = e instanceof Invalid ? e.message : `unexpected ${e instanceof Error ? e.name : typeof e}`;
    throw new MeshdError('E_RECORD_INVALID', `record ${recordName(message)} has an invalid signature or structure: ${why}`, { cause: e });
  }
}

/** Check that `data` is the data the message's author signed (CID and size). */
export async function verifyRecordData(message: RecordsWriteMessage, data: Uint8Array): Promise<void> {
  // Larger data has a dag-pb CID this module does not compute; the protocol's size limits keep
  // every record far below it, so such data cannot be what a member wrote.
  if (data.length > UNIXFS_CHUNK_SIZE) {
    throw new MeshdError('E_RECORD_INVALID', `record ${message.recordId} data (${data.length} bytes) is larger than meshd accepts`);
  }
  const cid = await computeDagPbCidFromBytes(data);
  if (cid !== message.descriptor.dataCid || data.length !== message.descriptor.dataSize) {
    throw new MeshdError('E_RECORD_INVALID', `record ${message.recordId} data does not match what its author signed`);
  }
}

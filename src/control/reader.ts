/**
 * Reading the network's records as one actor (the owner, a device, or a member): query with the
 * right role and filter, fetch data, verify the signature and data, decrypt, validate. A record
 * that fails any step is skipped and counted by reason — never a crash.
 *
 * Member-readable records are opened only through their single network-key entry (a reader's
 * own records also through its direct entry), so every reader sees the same plaintext whatever
 * other entries a writer adds. Records dated far in the future are refused: the time in a
 * message is the author's word and is used to order versions.
 */
import { createHash } from 'node:crypto';
import type { RecordsFilter, RecordsQueryReplyEntry, RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { canonicalDid } from '../identity/did-jwk.js';
import type { DwnClient } from '../dwn/client.js';
import { PublicKeys, verifyRecordData, verifyRecordsWriteMessage } from '../dwn/verify.js';
import { MeshdError } from '../errors.js';
import { decryptJwe, DecryptError, type DecryptVia } from './crypto.js';
import type { Keyring } from './keyring.js';
import { MEMBER_READABLE, PATHS, PROTOCOL_URI, ROLE_MEMBER, ROLE_NODE, kindOfPath, type RecordKind } from './protocol.js';
import { parseRecord, type RecordTypes } from './records.js';
import { LruMap } from '../util/lru.js';

export type ActorRole = 'owner' | 'node' | 'member';

export interface NetworkAccess {
  client: DwnClient;
  networkId: string;
  /** The network owner's DID (the DWN tenant). */
  anchor: string;
  role: ActorRole;
  keyring: Keyring;
}

export interface Decoded<K extends RecordKind = RecordKind> {
  kind: K;
  recordId: string;
  contextId: string;
  /** contextId of the parent record ('' for the root). */
  parentContextId: string;
  parentId: string | undefined;
  author: string;
  recipient: string | undefined;
  dateCreated: string;
  /** messageTimestamp of the newest write of the record. */
  timestamp: string;
  /** Network epoch of the record's network-key entry (undefined: none this reader holds). */
  epoch: number | undefined;
  /** CID of the record's data (two versions with the same CID carry the same bytes). */
  dataCid: string;
  data: RecordTypes[K];
}

export type SkipReason =
  | 'invalid'
  | 'decrypt-failed'
  | 'unknown-key'
  | 'not-for-me'
  | 'bad-signature'
  | 'wrong-author'
  | 'future-dated'
  | 'stale-epoch'
  | 'rollback';

export interface SkipCounters {
  invalid: number;
  decryptFailed: number;
  unknownKey: number;
  notForMe: number;
  badSignature: number;
  wrongAuthor: number;
  futureDated: number;
  staleEpoch: number;
  rollback: number;
}

export interface SkipLog {
  counters: SkipCounters;
  /** The most recent skips (newest last), for status and diagnostics. */
  recent: { at: string; kind: RecordKind; recordId: string; reason: SkipReason; message: string }[];
  /** Record versions already counted: a skipped record is counted once, not on every re-query. */
  seen: Set<string>;
  /** The reason of the latest skip, counted or not (callers clear it before a decode). */
  lastReason: SkipReason | null;
}

export function newSkipLog(): SkipLog {
  return {
    counters: { invalid: 0, decryptFailed: 0, unknownKey: 0, notForMe: 0, badSignature: 0, wrongAuthor: 0, futureDated: 0, staleEpoch: 0, rollback: 0 },
    recent: [],
    seen: new Set(),
    lastReason: null,
  };
}

const COUNTER: Record<SkipReason, keyof SkipCounters> = {
  invalid: 'invalid',
  'decrypt-failed': 'decryptFailed',
  'unknown-key': 'unknownKey',
  'not-for-me': 'notForMe',
  'bad-signature': 'badSignature',
  'wrong-author': 'wrongAuthor',
  'future-dated': 'futureDated',
  'stale-epoch': 'staleEpoch',
  rollback: 'rollback',
};

/** How far ahead of this clock a record's time may be before the record is refused. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export function recordSkip(log: SkipLog, kind: RecordKind, recordId: string, version: string, reason: SkipReason, message: string): void {
  log.lastReason = reason;
  const key = `${recordId}@${version}:${reason}`;
  if (log.seen.has(key)) return;
  log.seen.add(key);
  if (log.seen.size > 10_000) log.seen.clear();
  log.counters[COUNTER[reason]]++;
  log.recent.push({ at: new Date().toISOString(), kind, recordId, reason, message });
  if (log.recent.length > 50) log.recent.shift();
}

/** The query filter and role an actor uses to read records of `kind`. */
export function queryFor(acc: Pick<NetworkAccess, 'networkId' | 'role' | 'client'>, kind: RecordKind): { filter: RecordsFilter; protocolRole?: string } {
  const filter: RecordsFilter = { protocol: PROTOCOL_URI, protocolPath: PATHS[kind], contextId: acc.networkId };
  if (acc.role === 'owner') return { filter };
  const me = acc.client.me.did;
  switch (kind) {
    case 'keyDelivery':
    case 'member':
      return { filter: { ...filter, recipient: me } };
    case 'nodeRequest':
    case 'relayProposal':
      return { filter: { ...filter, author: me } };
    default:
      return { filter, protocolRole: acc.role === 'node' ? ROLE_NODE : ROLE_MEMBER };
  }
}

/** Record kinds an actor can read (and so follows). */
export function readableKinds(role: ActorRole): RecordKind[] {
  const common: RecordKind[] = ['keyDelivery', 'network', 'node', 'nodeInfo', 'endpoint', 'aclPolicy', 'relay'];
  if (role === 'node') return common;
  return role === 'owner' ? [...common, 'member', 'nodeRequest', 'relayProposal', 'invite', 'joinRequest'] : [...common, 'member', 'nodeRequest'];
}

function parentOf(contextId: string): string {
  const i = contextId.lastIndexOf('/');
  return i < 0 ? '' : contextId.slice(0, i);
}

/** Query all records of `kind`, newest first (entries only, data not yet decoded). */
export async function queryKind(acc: NetworkAccess, kind: RecordKind): Promise<RecordsQueryReplyEntry[]> {
  const { filter, protocolRole } = queryFor(acc, kind);
  return acc.client.query(filter, protocolRole !== undefined ? { protocolRole } : {});
}

/** Which recipient entry may open a record of `kind` by `author` for this reader. */
function viaFor(acc: NetworkAccess, kind: RecordKind, author: string): DecryptVia {
  if (!MEMBER_READABLE.has(kind)) return 'direct';
  return author === acc.client.me.did ? 'network-or-direct' : 'network';
}

/**
 * Initial writes already verified, by their exact JSON (kept as its SHA-256), with their author:
 * every update of a record carries the same initial write, and a heartbeat re-write is an update.
 * Verification is a function of the message alone, so a message with the same JSON has the same
 * answer; any other message (one byte changed) is verified in full. Bounded, least recently used
 * out first.
 */
export class VerifiedInitialWrites {
  private readonly map: LruMap<string, string>;
  /** The signers' keys as node:crypto holds them, for these and the messages checked with them. */
  readonly keys = new PublicKeys();
  constructor(max = 1024) {
    this.map = new LruMap(max);
  }

  async authorOf(message: RecordsWriteMessage): Promise<string> {
    let key: string;
    try {
      key = createHash('sha256').update(JSON.stringify(message)).digest('base64');
    } catch {
      return canonicalDid(await verifyRecordsWriteMessage(message, this.keys)); // not JSON (a cycle, a BigInt): no memo
    }
    const hit = this.map.get(key);
    if (hit !== undefined) return hit;
    const author = canonicalDid(await verifyRecordsWriteMessage(message, this.keys));
    this.map.set(key, author);
    return author;
  }

  get size(): number {
    return this.map.size;
  }
}

/** Verify a message's signature and (for updates) that its creator wrote it; returns the author or undefined (counted). */
export async function verifiedAuthor(kind: RecordKind, msg: RecordsQueryReplyEntry | RecordsWriteMessage, skips: SkipLog, initialWrites?: VerifiedInitialWrites): Promise<string | undefined> {
  const m = msg as RecordsQueryReplyEntry;
  const version = m.descriptor?.messageTimestamp ?? '';
  const recordId = typeof m.recordId === 'string' ? m.recordId : '?';
  try {
    const author = canonicalDid(await verifyRecordsWriteMessage(m, initialWrites?.keys));
    if (m.initialWrite) {
      const creator = initialWrites ? await initialWrites.authorOf(m.initialWrite) : canonicalDid(await verifyRecordsWriteMessage(m.initialWrite));
      if (creator !== author || m.initialWrite.recordId !== recordId) {
        // in this protocol only a record's creator updates it
        recordSkip(skips, kind, recordId, version, 'wrong-author', 'record updated by someone other than its creator');
        return undefined;
      }
    }
    return author;
  } catch (e) {
    recordSkip(skips, kind, recordId, version, 'bad-signature', (e as Error).message);
    return undefined;
  }
}

/**
 * Decode one entry; returns undefined (and counts it) when it must be skipped. `initialWrites`:
 * initial writes verified before (a new version of a known record — a key rotation's
 * re-encryption — then costs one signature check, not two).
 */
export async function decodeEntry<K extends RecordKind>(
  acc: NetworkAccess,
  kind: K,
  entry: RecordsQueryReplyEntry | RecordsWriteMessage,
  skips: SkipLog,
  data?: Uint8Array,
  now: number = Date.now(),
  initialWrites?: VerifiedInitialWrites,
): Promise<Decoded<K> | undefined> {
  const msg = entry as RecordsQueryReplyEntry;
  const version = msg.descriptor?.messageTimestamp ?? '';
  const recordId = typeof msg.recordId === 'string' ? msg.recordId : '?';
  if (kindOfPath(msg.descriptor?.protocolPath ?? '') !== kind) {
    recordSkip(skips, kind, recordId, version, 'invalid', 'unexpected protocol path');
    return undefined;
  }
  const at = Date.parse(version);
  if (!Number.isFinite(at) || at - now > MAX_CLOCK_SKEW_MS) {
    recordSkip(skips, kind, recordId, version, 'future-dated', `record is dated ${version}, ahead of this clock`);
    return undefined;
  }
  let bytes = data;
  if (!bytes && typeof msg.encodedData === 'string') bytes = new Uint8Array(Buffer.from(msg.encodedData, 'base64url'));
  if (!bytes) {
    const { protocolRole } = queryFor(acc, kind);
    const r = await acc.client.read(recordId, protocolRole);
    if (!r) return undefined;
    bytes = r.data;
  }
  const author = await verifiedAuthor(kind, msg, skips, initialWrites);
  if (author === undefined) return undefined;
  try {
    await verifyRecordData(msg, bytes);
  } catch (e) {
    recordSkip(skips, kind, recordId, version, 'bad-signature', (e as Error).message);
    return undefined;
  }
  let text: string;
  let epoch: number | undefined;
  try {
    const d = await decryptJwe(bytes, acc.keyring, viaFor(acc, kind, author));
    text = d.text;
    epoch = d.epoch;
  } catch (e) {
    if (e instanceof DecryptError) {
      const reason: SkipReason =
        e.reason === 'unknown-key' ? 'unknown-key' : e.reason === 'no-key' ? 'not-for-me' : e.reason === 'malformed' ? 'invalid' : 'decrypt-failed';
      recordSkip(skips, kind, recordId, version, reason, e.message);
      return undefined;
    }
    throw e;
  }
  let value: RecordTypes[K];
  try {
    value = parseRecord(kind, text, 'read');
  } catch (e) {
    if (e instanceof MeshdError) {
      recordSkip(skips, kind, recordId, version, 'invalid', e.message);
      return undefined;
    }
    throw e;
  }
  const initial = msg.initialWrite ?? msg;
  const contextId = msg.contextId ?? recordId;
  return {
    kind,
    recordId,
    contextId,
    parentContextId: parentOf(contextId),
    parentId: msg.descriptor.parentId,
    author,
    recipient: msg.descriptor.recipient !== undefined ? canonicalDidOrRaw(msg.descriptor.recipient) : undefined,
    dateCreated: initial.descriptor.dateCreated,
    timestamp: msg.descriptor.messageTimestamp,
    epoch,
    dataCid: msg.descriptor.dataCid,
    data: value,
  };
}

function canonicalDidOrRaw(d: string): string {
  try {
    return canonicalDid(d);
  } catch {
    return d;
  }
}

/**
 * Where a record sits in the reader's model: a device's nodeInfo or endpoint has one slot per
 * node (the newest valid record there wins, older ones and junk are never decoded); every other
 * record is its own slot.
 */
export function slotOf(kind: RecordKind, recordId: string, contextId: string | undefined): string {
  if (kind === 'nodeInfo' || kind === 'endpoint') return nodeSlot(kind, parentOf(contextId ?? recordId));
  return `${kind}|${recordId}`;
}

/** The slot of a node's nodeInfo or endpoint (by the node record's contextId). */
export function nodeSlot(kind: 'nodeInfo' | 'endpoint', nodeContextId: string): string {
  return `${kind}|${nodeContextId}`;
}

/** Records already verified and decrypted, by recordId@dataCid (bounded, least recently used out first). */
export class DecodeCache {
  private readonly map: LruMap<string, Decoded>;
  /** The initial writes of the records held, verified once (heartbeats carry them again and again). */
  readonly initialWrites = new VerifiedInitialWrites();
  constructor(max = 4096) {
    this.map = new LruMap(max);
  }

  static key(recordId: string, dataCid: string): string {
    return `${recordId}@${dataCid}`;
  }

  get(key: string): Decoded | undefined {
    return this.map.get(key);
  }

  set(key: string, v: Decoded): void {
    this.map.set(key, v);
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Decode one entry through the cache. A hit whose message is a newer version of the same bytes
 * (a heartbeat re-write) is re-verified (signature only) and takes the new time.
 */
export async function decodeCached<K extends RecordKind>(
  acc: NetworkAccess,
  kind: K,
  entry: RecordsQueryReplyEntry | RecordsWriteMessage,
  skips: SkipLog,
  cache: DecodeCache,
  now: number = Date.now(),
): Promise<Decoded<K> | undefined> {
  const key = DecodeCache.key(entry.recordId, entry.descriptor.dataCid);
  const hit = cache.get(key) as Decoded<K> | undefined;
  if (hit && hit.kind === kind) {
    if (hit.timestamp === entry.descriptor.messageTimestamp) return hit;
    const at = Date.parse(entry.descriptor.messageTimestamp);
    if (!Number.isFinite(at) || at - now > MAX_CLOCK_SKEW_MS) {
      recordSkip(skips, kind, entry.recordId, entry.descriptor.messageTimestamp, 'future-dated', 'record is dated ahead of this clock');
      return undefined;
    }
    const author = await verifiedAuthor(kind, entry, skips, cache.initialWrites);
    if (author !== hit.author) return undefined;
    const next = { ...hit, timestamp: entry.descriptor.messageTimestamp };
    cache.set(key, next);
    return next;
  }
  const d = await decodeEntry(acc, kind, entry, skips, undefined, now, cache.initialWrites);
  if (d) cache.set(key, d);
  return d;
}

/**
 * Fetch and decode the records of `kind` the actor can read. For per-node slots only the newest
 * entry that decodes is kept; the others in that slot are not decoded at all.
 */
export async function fetchKind<K extends RecordKind>(acc: NetworkAccess, kind: K, skips: SkipLog, cache: DecodeCache, now: number = Date.now()): Promise<Decoded<K>[]> {
  const entries = await queryKind(acc, kind);
  const bySlot = new Map<string, RecordsQueryReplyEntry[]>();
  for (const e of entries) {
    if (typeof e?.recordId !== 'string' || typeof e.descriptor?.messageTimestamp !== 'string') continue;
    const slot = slotOf(kind, e.recordId, e.contextId);
    const list = bySlot.get(slot);
    if (list) list.push(e);
    else bySlot.set(slot, [e]);
  }
  const out: Decoded<K>[] = [];
  for (const list of bySlot.values()) {
    list.sort((a, b) => (a.descriptor.messageTimestamp < b.descriptor.messageTimestamp ? 1 : a.descriptor.messageTimestamp > b.descriptor.messageTimestamp ? -1 : 0));
    for (const e of list) {
      const d = await decodeCached(acc, kind, e, skips, cache, now);
      if (d) {
        out.push(d);
        break;
      }
    }
  }
  return out;
}

/**
 * Take the network keys delivered to this device (by the owner); returns the epochs added.
 * Deliveries are one record per recipient, rewritten with the current key at each rotation.
 */
export function absorbKeyDeliveries(acc: NetworkAccess, deliveries: Decoded<'keyDelivery'>[]): number[] {
  const added: number[] = [];
  if (acc.role === 'owner') return added;
  for (const d of deliveries) {
    if (d.author !== acc.anchor || d.recipient !== acc.client.me.did) continue;
    if (!acc.keyring.hasEpoch(d.data.epoch)) added.push(d.data.epoch);
    acc.keyring.addNetworkKey(d.data.epoch, new Uint8Array(Buffer.from(d.data.networkKey, 'base64url')));
  }
  return added;
}

/**
 * Reading the network's records as one actor (the owner, a device, or a member): query with the
 * right role and filter, fetch data, verify the signature and data, decrypt, validate. A record
 * that fails any step is skipped and counted by reason — never a crash.
 */
import type { RecordsFilter, RecordsQueryReplyEntry, RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { canonicalDid } from '../identity/did-jwk.js';
import type { DwnClient } from '../dwn/client.js';
import { verifyRecordData, verifyRecordsWriteMessage } from '../dwn/verify.js';
import { MeshdError } from '../errors.js';
import { decryptJwe, DecryptError } from './crypto.js';
import type { Keyring } from './keyring.js';
import { PATHS, PROTOCOL_URI, ROLE_MEMBER, ROLE_NODE, kindOfPath, type RecordKind } from './protocol.js';
import { parseRecord, type RecordTypes } from './records.js';

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
  /** Network epoch the data was encrypted under (undefined: not under a network key). */
  epoch: number | undefined;
  data: RecordTypes[K];
}

export type SkipReason = 'invalid' | 'decrypt-failed' | 'unknown-epoch' | 'not-for-me' | 'bad-signature' | 'wrong-author';

export interface SkipCounters {
  invalid: number;
  decryptFailed: number;
  unknownEpoch: number;
  notForMe: number;
  badSignature: number;
  wrongAuthor: number;
}

export interface SkipLog {
  counters: SkipCounters;
  /** The most recent skips (newest last), for status and diagnostics. */
  recent: { at: string; kind: RecordKind; recordId: string; reason: SkipReason; message: string }[];
  /** Record versions already counted: a skipped record is counted once, not on every re-query. */
  seen: Set<string>;
}

export function newSkipLog(): SkipLog {
  return {
    counters: { invalid: 0, decryptFailed: 0, unknownEpoch: 0, notForMe: 0, badSignature: 0, wrongAuthor: 0 },
    recent: [],
    seen: new Set(),
  };
}

const COUNTER: Record<SkipReason, keyof SkipCounters> = {
  invalid: 'invalid',
  'decrypt-failed': 'decryptFailed',
  'unknown-epoch': 'unknownEpoch',
  'not-for-me': 'notForMe',
  'bad-signature': 'badSignature',
  'wrong-author': 'wrongAuthor',
};

export function recordSkip(log: SkipLog, kind: RecordKind, recordId: string, version: string, reason: SkipReason, message: string): void {
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
      return { filter: { ...filter, author: me } };
    default:
      return { filter, protocolRole: acc.role === 'node' ? ROLE_NODE : ROLE_MEMBER };
  }
}

/** Record kinds an actor can read (and so follows). */
export function readableKinds(role: ActorRole): RecordKind[] {
  const common: RecordKind[] = ['keyDelivery', 'network', 'node', 'nodeInfo', 'endpoint', 'aclPolicy', 'relay'];
  return role === 'node' ? common : [...common, 'member', 'nodeRequest'];
}

function parentOf(contextId: string): string {
  const i = contextId.lastIndexOf('/');
  return i < 0 ? '' : contextId.slice(0, i);
}

/** Query all records of `kind` (entries only, data not yet decoded). */
export async function queryKind(acc: NetworkAccess, kind: RecordKind): Promise<RecordsQueryReplyEntry[]> {
  const { filter, protocolRole } = queryFor(acc, kind);
  return acc.client.query(filter, protocolRole !== undefined ? { protocolRole } : {});
}

/** Decode one entry; returns undefined (and counts it) when it must be skipped. */
export async function decodeEntry<K extends RecordKind>(
  acc: NetworkAccess,
  kind: K,
  entry: RecordsQueryReplyEntry | RecordsWriteMessage,
  skips: SkipLog,
  data?: Uint8Array,
): Promise<Decoded<K> | undefined> {
  const msg = entry as RecordsQueryReplyEntry;
  const version = msg.descriptor?.messageTimestamp ?? '';
  const recordId = typeof msg.recordId === 'string' ? msg.recordId : '?';
  if (kindOfPath(msg.descriptor?.protocolPath ?? '') !== kind) {
    recordSkip(skips, kind, recordId, version, 'invalid', 'unexpected protocol path');
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
  const initial = msg.initialWrite ?? msg;
  let author: string;
  try {
    author = canonicalDid(await verifyRecordsWriteMessage(msg));
    await verifyRecordData(msg, bytes);
    if (msg.initialWrite) {
      const creator = canonicalDid(await verifyRecordsWriteMessage(msg.initialWrite));
      if (creator !== author || msg.initialWrite.recordId !== recordId) {
        // in this protocol only a record's creator updates it
        recordSkip(skips, kind, recordId, version, 'wrong-author', 'record updated by someone other than its creator');
        return undefined;
      }
    }
  } catch (e) {
    recordSkip(skips, kind, recordId, version, 'bad-signature', (e as Error).message);
    return undefined;
  }
  let text: string;
  let epoch: number | undefined;
  try {
    const d = await decryptJwe(bytes, acc.keyring.lookup);
    text = d.text;
    epoch = d.epoch;
  } catch (e) {
    if (e instanceof DecryptError) {
      const reason: SkipReason =
        e.reason === 'unknown-epoch' ? 'unknown-epoch' : e.reason === 'no-key' ? 'not-for-me' : e.reason === 'malformed' ? 'invalid' : 'decrypt-failed';
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

/** Fetch and decode every record of `kind` the actor can read. */
export async function fetchKind<K extends RecordKind>(acc: NetworkAccess, kind: K, skips: SkipLog, cache?: DecodeCache): Promise<Decoded<K>[]> {
  const entries = await queryKind(acc, kind);
  const out: Decoded<K>[] = [];
  for (const e of entries) {
    const key = `${e.recordId}@${e.descriptor.messageTimestamp}@${e.descriptor.dataCid}`;
    const hit = cache?.get(key) as Decoded<K> | undefined;
    if (hit && hit.kind === kind) {
      out.push(hit);
      continue;
    }
    const d = await decodeEntry(acc, kind, e, skips);
    if (d) {
      out.push(d);
      if (cache) {
        if (cache.size > 5000) cache.clear();
        cache.set(key, d);
      }
    }
  }
  return out;
}

/** Records already verified and decrypted, by recordId@messageTimestamp@dataCid. */
export type DecodeCache = Map<string, Decoded>;

/** Read this device's key deliveries and add the keys to its keyring; returns the epochs added. */
export function absorbKeyDeliveries(acc: NetworkAccess, deliveries: Decoded<'keyDelivery'>[]): number[] {
  const added: number[] = [];
  for (const d of deliveries) {
    if (d.author !== acc.anchor) continue;
    if (acc.role !== 'owner' && d.recipient !== acc.client.me.did) continue;
    if (!acc.keyring.hasEpoch(d.data.epoch)) added.push(d.data.epoch);
    if (acc.role !== 'owner') acc.keyring.addNetworkKey(d.data.epoch, new Uint8Array(Buffer.from(d.data.networkKey, 'base64url')));
  }
  return added;
}

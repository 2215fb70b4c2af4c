/**
 * The DWN messages meshd sends, built and signed without loading dwn-sdk-js at run time (its
 * index pulls in stores, validators and the UnixFS importer: ~58 MB a process). Each builder
 * gives the message the SDK's `create` gives for the same input: same descriptor members in
 * the same order, same normalisation (protocol and schema URLs, filters), same signature
 * payload and protected header, so the same JSON and the same CIDs
 * (test/unit/dwn-messages.test.ts compares them member for member).
 *
 * Only what meshd uses is supported: one signer, no delegated grants, permission grants,
 * attestations or encryption property. The SDK's JSON-schema and protocol-definition checks
 * are not repeated here; the DWN makes them when it processes the message.
 */
import type {
  GeneralJws,
  ProtocolDefinition,
  ProtocolsConfigureMessage,
  ProtocolsQueryMessage,
  RecordsDeleteMessage,
  RecordsFilter,
  RecordsQueryMessage,
  RecordsReadMessage,
  RecordsSubscribeMessage,
  RecordsWriteMessage,
  RecordsWriteTags,
} from '@tbd54566975/dwn-sdk-js';
import { DwnMessageError } from '../errors.js';
import { computeCidSync, computeDataCidSync } from './cid.js';

/** What signs a message: the structural twin of the SDK's `Signer`. */
export interface MessageSigner {
  /** Fully qualified key id, `<did>#<fragment>`; the part before `#` is the author. */
  readonly keyId: string;
  /** JWS `alg`. */
  readonly algorithm: string;
  sign(content: Uint8Array): Promise<Uint8Array>;
}

/** The SDK's `DateSort` values. */
export const DateSort = {
  CreatedAscending: 'createdAscending',
  CreatedDescending: 'createdDescending',
  PublishedAscending: 'publishedAscending',
  PublishedDescending: 'publishedDescending',
} as const;
export type DateSort = (typeof DateSort)[keyof typeof DateSort];

/** A query cursor exactly as a reply hands it back. */
export interface PaginationCursor {
  messageCid: string;
  value: string | number;
}

export interface Pagination {
  cursor?: PaginationCursor;
  limit?: number;
}

// ---------------------------------------------------------------------------------------------
// Timestamps

let lastMicros = 0;

/**
 * The current time as DWN messages carry it: UTC ISO 8601 with six fractional digits
 * (`2024-05-01T12:00:00.123456Z`). The milliseconds are the wall clock's; the microseconds come
 * from the monotonic clock, and successive calls in this process never repeat or go back, so
 * two messages built in the same millisecond (a record and its immediate update) still order.
 */
export function currentTimestamp(): string {
  const wall = Date.now() * 1000 + (Math.floor(performance.now() * 1000) % 1000);
  lastMicros = Math.max(wall, lastMicros + 1);
  return formatMicros(lastMicros);
}

/** Microseconds since the epoch as a DWN timestamp. */
export function formatMicros(micros: number): string {
  if (!Number.isSafeInteger(micros) || micros < 0) throw new DwnMessageError(`cannot format ${micros} µs as a timestamp`);
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`;
}

// ---------------------------------------------------------------------------------------------
// Normalisation, as the SDK does it

/** The SDK's URL normalisation: a scheme added when missing; no query, no fragment, no trailing slash. */
export function normalizeUrl(url: string): string {
  const full = /^[^:]+:(\/{2})?[^/].*/.test(url) ? url : `http://${url}`;
  let u: URL;
  try {
    u = new URL(full);
  } catch (cause) {
    throw new DwnMessageError(`cannot normalise the URL ${JSON.stringify(url)}`, { cause });
  }
  u.search = '';
  u.hash = '';
  return u.href.endsWith('/') ? u.href.slice(0, -1) : u.href;
}

type Obj = Record<string, unknown>;

/** Recursively delete members whose value is `undefined` (DAG-CBOR cannot encode them). */
export function removeUndefinedProperties(obj: Obj): void {
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v === undefined) delete obj[key];
    else if (typeof v === 'object' && v !== null) removeUndefinedProperties(v as Obj);
  }
}

/** The SDK's `Records.normalizeFilter`: a copy with protocol and schema normalised, no undefined members. */
export function normalizeRecordsFilter(filter: RecordsFilter): RecordsFilter {
  const copy: Obj = {
    ...copyDeep(filter),
    protocol: filter.protocol === undefined ? undefined : normalizeUrl(filter.protocol),
    schema: filter.schema === undefined ? undefined : normalizeUrl(filter.schema),
  };
  removeUndefinedProperties(copy);
  return copy as RecordsFilter;
}

/**
 * A copy (prototypes kept) deep enough that removing undefined members never touches the
 * caller's object (the SDK deletes them in place; the result is the same).
 */
function copyDeep<T>(v: T): T {
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((x: unknown) => copyDeep(x)) as T;
  const out = Object.create(Object.getPrototypeOf(v) as object | null) as Obj;
  // defineProperty: a member named `__proto__` stays a member
  for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: copyDeep(x), enumerable: true, writable: true, configurable: true });
  return out as T;
}

// ---------------------------------------------------------------------------------------------
// Signatures

/** The part of a key id before `#`: the DID, as the SDK's `Jws.extractDid`. */
export function didOfKeyId(keyId: string): string {
  return keyId.split('#')[0]!;
}

/** A General JWS over `payload` with one signature, protected header `{"kid","alg"}` as the SDK writes it. */
export async function createGeneralJws(payload: Obj, signer: MessageSigner): Promise<GeneralJws> {
  const payloadB64 = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
  const protectedB64 = Buffer.from(JSON.stringify({ kid: signer.keyId, alg: signer.algorithm }), 'utf8').toString('base64url');
  const signature = await signer.sign(new Uint8Array(Buffer.from(`${protectedB64}.${payloadB64}`, 'utf8')));
  return { payload: payloadB64, signatures: [{ protected: protectedB64, signature: Buffer.from(signature).toString('base64url') }] };
}

/** `Message.createAuthorization` for a plain signer: payload `{descriptorCid, protocolRole?}`. */
async function createAuthorization(descriptor: Obj, signer: MessageSigner, protocolRole?: string): Promise<{ signature: GeneralJws }> {
  const payload: Obj = { descriptorCid: computeCidSync(descriptor), protocolRole };
  removeUndefinedProperties(payload);
  return { signature: await createGeneralJws(payload, signer) };
}

// ---------------------------------------------------------------------------------------------
// Records

export interface RecordsWriteOptions {
  signer: MessageSigner;
  data: Uint8Array;
  dataFormat: string;
  protocol?: string;
  protocolPath?: string;
  schema?: string;
  recipient?: string;
  tags?: RecordsWriteTags;
  /** Context id of the parent record; absent for a root protocol record (or a flat-space record). */
  parentContextId?: string;
  protocolRole?: string;
  /** Given for an update of an existing record (with its `dateCreated`). */
  recordId?: string;
  dateCreated?: string;
  messageTimestamp?: string;
  published?: boolean;
  datePublished?: string;
}

/** Entry id of a RecordsWrite: CID of its descriptor plus the author (the recordId of an initial write). */
export function entryId(author: string, descriptor: object): string {
  return computeCidSync({ ...descriptor, author });
}

/** The record id of a context id: its last segment, as the SDK's `getRecordIdFromContextId`. */
function lastContextSegment(contextId: string | undefined): string | undefined {
  return contextId?.split('/').filter((s) => s !== '').pop();
}

/** `RecordsWrite.create(...).message` of the SDK for a single signer. */
export async function createRecordsWrite(o: RecordsWriteOptions): Promise<RecordsWriteMessage> {
  if ((o.protocol === undefined) !== (o.protocolPath === undefined)) {
    throw new DwnMessageError('`protocol` and `protocolPath` must both be given or both be left out');
  }
  const currentTime = currentTimestamp();
  const descriptor: Obj = {
    interface: 'Records',
    method: 'Write',
    protocol: o.protocol !== undefined ? normalizeUrl(o.protocol) : undefined,
    protocolPath: o.protocolPath,
    recipient: o.recipient,
    schema: o.schema !== undefined ? normalizeUrl(o.schema) : undefined,
    tags: o.tags !== undefined ? copyDeep(o.tags) : undefined,
    parentId: lastContextSegment(o.parentContextId),
    dataCid: computeDataCidSync(o.data),
    dataSize: o.data.length,
    dateCreated: o.dateCreated ?? currentTime,
    messageTimestamp: o.messageTimestamp ?? currentTime,
    published: o.published,
    datePublished: o.datePublished,
    dataFormat: o.dataFormat,
  };
  if (o.published === true && o.datePublished === undefined) descriptor.datePublished = currentTime;
  removeUndefinedProperties(descriptor);

  const descriptorCid = computeCidSync(descriptor);
  const recordId = o.recordId ?? entryId(didOfKeyId(o.signer.keyId), descriptor);
  let contextId: string | undefined;
  if (descriptor.protocol !== undefined) {
    contextId = o.parentContextId === undefined || o.parentContextId === '' ? recordId : `${o.parentContextId}/${recordId}`;
  }
  const payload: Obj = { recordId, descriptorCid, contextId, protocolRole: o.protocolRole };
  removeUndefinedProperties(payload);
  const signature = await createGeneralJws(payload, o.signer);
  const message: Obj = { recordId, descriptor };
  if (contextId !== undefined) message.contextId = contextId;
  message.authorization = { signature };
  return message as unknown as RecordsWriteMessage;
}

export interface RecordsQueryOptions {
  signer: MessageSigner;
  filter: RecordsFilter;
  dateSort?: DateSort;
  pagination?: Pagination;
  protocolRole?: string;
  messageTimestamp?: string;
}

/** `RecordsQuery.create(...).message` of the SDK. */
export async function createRecordsQuery(o: RecordsQueryOptions): Promise<RecordsQueryMessage> {
  if (o.filter.published === false && (o.dateSort === DateSort.PublishedAscending || o.dateSort === DateSort.PublishedDescending)) {
    throw new DwnMessageError(`a query must not filter for \`published: false\` and sort by ${o.dateSort}`);
  }
  const descriptor: Obj = {
    interface: 'Records',
    method: 'Query',
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
    filter: normalizeRecordsFilter(o.filter),
    dateSort: o.dateSort,
    pagination: o.pagination !== undefined ? copyDeep(o.pagination) : undefined,
  };
  removeUndefinedProperties(descriptor);
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer, o.protocolRole) } as unknown as RecordsQueryMessage;
}

export interface RecordsReadOptions {
  signer: MessageSigner;
  filter: RecordsFilter;
  protocolRole?: string;
  messageTimestamp?: string;
}

/** `RecordsRead.create(...).message` of the SDK. */
export async function createRecordsRead(o: RecordsReadOptions): Promise<RecordsReadMessage> {
  const descriptor: Obj = {
    interface: 'Records',
    method: 'Read',
    filter: normalizeRecordsFilter(o.filter),
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
  };
  removeUndefinedProperties(descriptor);
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer, o.protocolRole) } as unknown as RecordsReadMessage;
}

export interface RecordsDeleteOptions {
  signer: MessageSigner;
  recordId: string;
  prune?: boolean;
  protocolRole?: string;
  messageTimestamp?: string;
}

/** `RecordsDelete.create(...).message` of the SDK. */
export async function createRecordsDelete(o: RecordsDeleteOptions): Promise<RecordsDeleteMessage> {
  const descriptor: Obj = {
    interface: 'Records',
    method: 'Delete',
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
    recordId: o.recordId,
    prune: o.prune ?? false,
  };
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer, o.protocolRole) } as unknown as RecordsDeleteMessage;
}

export interface RecordsSubscribeOptions {
  signer: MessageSigner;
  filter: RecordsFilter;
  protocolRole?: string;
  messageTimestamp?: string;
}

/** `RecordsSubscribe.create(...).message` of the SDK. */
export async function createRecordsSubscribe(o: RecordsSubscribeOptions): Promise<RecordsSubscribeMessage> {
  const descriptor: Obj = {
    interface: 'Records',
    method: 'Subscribe',
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
    filter: normalizeRecordsFilter(o.filter),
  };
  removeUndefinedProperties(descriptor);
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer, o.protocolRole) } as unknown as RecordsSubscribeMessage;
}

// ---------------------------------------------------------------------------------------------
// Protocols

/** `ProtocolsConfigure.normalizeDefinition`: protocol and type schema URLs normalised. */
export function normalizeProtocolDefinition(definition: ProtocolDefinition): ProtocolDefinition {
  const types: ProtocolDefinition['types'] = {};
  for (const [name, type] of Object.entries(definition.types)) {
    types[name] = type.schema !== undefined ? { ...type, schema: normalizeUrl(type.schema) } : type;
  }
  return { ...definition, protocol: normalizeUrl(definition.protocol), types };
}

export interface ProtocolsConfigureOptions {
  signer: MessageSigner;
  definition: ProtocolDefinition;
  messageTimestamp?: string;
}

/** `ProtocolsConfigure.create(...).message` of the SDK. */
export async function createProtocolsConfigure(o: ProtocolsConfigureOptions): Promise<ProtocolsConfigureMessage> {
  const descriptor: Obj = {
    interface: 'Protocols',
    method: 'Configure',
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
    definition: normalizeProtocolDefinition(o.definition),
  };
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer) } as unknown as ProtocolsConfigureMessage;
}

export interface ProtocolsQueryOptions {
  signer: MessageSigner;
  filter?: { protocol: string };
  messageTimestamp?: string;
}

/** `ProtocolsQuery.create(...).message` of the SDK. */
export async function createProtocolsQuery(o: ProtocolsQueryOptions): Promise<ProtocolsQueryMessage> {
  const descriptor: Obj = {
    interface: 'Protocols',
    method: 'Query',
    messageTimestamp: o.messageTimestamp ?? currentTimestamp(),
    filter: o.filter !== undefined ? { ...o.filter, protocol: normalizeUrl(o.filter.protocol) } : undefined,
  };
  removeUndefinedProperties(descriptor);
  return { descriptor, authorization: await createAuthorization(descriptor, o.signer) } as unknown as ProtocolsQueryMessage;
}

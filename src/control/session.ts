/**
 * One command's (or the daemon's) access to the joined network: the DWN client, the keyring,
 * the records read so far, and the write helpers that validate, encrypt and sign.
 */
import type { Profile } from '../identity/profile.js';
import { parseDidJwk } from '../identity/did-jwk.js';
import { x25519PublicFromEd25519 } from '../identity/keys.js';
import { DwnError, MeshdError } from '../errors.js';
import { DwnClient } from '../dwn/client.js';
import { encryptJson, type JweRecipient } from './crypto.js';
import { leaseEmbeddedDwn, type EmbeddedLease } from './embedded.js';
import { Keyring } from './keyring.js';
import { markRemoved, removedError, requireJoinedNetwork, type JoinedNetwork } from './local-state.js';
import type { RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { EpochGuard } from './epochs.js';
import { fetchEventRecords, type EventReadCounts } from './event-reads.js';
import { currentNetwork, type RecordSet } from './model.js';
import { RecordSlots, type NodeIndex } from './record-slots.js';
import { DATA_FORMAT, MAX_DATA_SIZE, PATHS, PROTOCOL_URI, kindOfPath, type RecordKind } from './protocol.js';
import {
  absorbKeyDeliveries,
  decodeCached,
  decodeEntry,
  DecodeCache,
  fetchKind,
  newSkipLog,
  nodeSlot,
  recordSkip,
  slotOf,
  type ActorRole,
  type Decoded,
  type NetworkAccess,
  type SkipLog,
} from './reader.js';
import { validateRecord, type RecordTypes } from './records.js';
import { canonicalJson } from './netmap.js';

/** Records kept waiting for a network key (one per slot; the oldest out first beyond this). */
const MAX_WAITING_FOR_KEY = 1024;

export interface ControlContext {
  home: string;
  profile: Profile;
  /**
   * Where the network's state is kept (network.json, map cache, epoch floor): its slot's state
   * directory (control/network-slots.ts). Default: the profile directory (the primary slot).
   */
  stateDir?: string;
  /** Per-call DWN timeout in ms (default 10 s). */
  timeoutMs?: number;
  /** Progress lines for long operations. */
  progress?: (line: string) => void;
}

/** The directory holding the context's network state (see ControlContext.stateDir). */
export function networkDir(ctx: ControlContext): string {
  return ctx.stateDir ?? ctx.profile.dir;
}

export function x25519OfDid(did: string): Uint8Array {
  return x25519PublicFromEd25519(parseDidJwk(did));
}

/** Open the DWN for an endpoint; embedded endpoints get a server started when none answers. */
export async function openDwn(ctx: ControlContext, endpoint: string, embedded: boolean): Promise<{ client: (target: string) => DwnClient; lease: EmbeddedLease | undefined; endpoint: string }> {
  let lease: EmbeddedLease | undefined;
  let url = endpoint;
  if (embedded) {
    lease = await leaseEmbeddedDwn(ctx.home, endpoint);
    if (lease.server) ctx.progress?.(`started the embedded DWN at ${lease.endpoint} for this command`);
    url = lease.endpoint;
  }
  const me = { did: ctx.profile.did, edSeed: ctx.profile.keys.edSeed };
  return { client: (target) => new DwnClient(url, target, me, { timeoutMs: ctx.timeoutMs ?? 10_000 }), lease, endpoint: url };
}

/** What an update needs to know about the record it replaces. */
export type RecordRef<K extends RecordKind = RecordKind> = Pick<Decoded<K>, 'kind' | 'recordId' | 'contextId' | 'parentContextId' | 'recipient' | 'dateCreated'>;

export interface WriteNewOptions {
  parentContextId?: string;
  recipient?: string;
  recipients: JweRecipient[];
  tags?: Record<string, string | number>;
  protocolRole?: string;
}

export class NetworkSession {
  readonly ctx: ControlContext;
  readonly joined: JoinedNetwork;
  readonly acc: NetworkAccess;
  readonly skips: SkipLog = newSkipLog();
  readonly epochs: EpochGuard;
  private readonly decoded = new DecodeCache();
  /**
   * Every record read, by slot (see slotOf), and the records in force (`set`): the epoch rules
   * applied slot by slot as records come (record-slots.ts).
   */
  private readonly slots: RecordSlots;
  private readonly lease: EmbeddedLease | undefined;
  /** Clock (tests move it). */
  now: () => number = Date.now;
  /**
   * Called once a removal's revocations are written, before its key rotation: the owner's
   * control client rebuilds its map then, so the owner's own data plane drops the device as
   * early as every other device's does.
   */
  onRevoked: (() => void) | undefined;
  /** DWN requests made for events: reads of one record, and queries standing in for many. */
  readonly eventReads: EventReadCounts = { reads: 0, batchQueries: 0 };
  /** Records read one by one for events (each a DWN request). */
  get reads(): number {
    return this.eventReads.reads + this.eventReads.batchQueries;
  }
  /** Slots whose record, read by the last `ingest`, was skipped (invalid, undecryptable…). */
  readonly failedSlots = new Set<string>();
  /**
   * Records an event named that are encrypted under a network key this device does not hold yet
   * (a rotation whose key delivery has not been read): the newest per slot, bounded. A new key
   * opens them by re-reading just these (`retryWaitingForKey`), not every record.
   */
  private readonly waitingForKey = new Map<string, RecordsWriteMessage>();
  /** Records the last `ingest` could not open for want of a network key. */
  waitedInLastIngest = 0;
  /** Network keys learned from key deliveries so far (a change means: retry what waited). */
  keysLearned = 0;
  /** How long a write may wait for the DWN (undefined: the client's timeout); a key rotation waits longer. */
  writeTimeoutMs: number | undefined;
  /** New versions taken in that carried the same content as the version held (not a change). */
  contentRewrites = 0;
  /** keysLearned when the waiting records were last read again. */
  private keysAtRetry = 0;

  private constructor(ctx: ControlContext, joined: JoinedNetwork, acc: NetworkAccess, lease: EmbeddedLease | undefined) {
    this.ctx = ctx;
    this.joined = joined;
    this.acc = acc;
    this.lease = lease;
    this.epochs = new EpochGuard(networkDir(ctx), joined.networkId);
    acc.keyring.noteEpoch(this.epochs.highest);
    this.slots = new RecordSlots({ epochs: this.epochs, networkId: joined.networkId, anchor: joined.anchor, skips: this.skips, onEpoch: (e) => acc.keyring.noteEpoch(e) });
  }

  /** The records in force: every record read with the epoch rules applied. */
  get set(): RecordSet {
    return this.slots.set;
  }

  /** The node records in force by DID and by contextId (memoised while they stay the same). */
  nodeIndex(): NodeIndex {
    return this.slots.nodeIndex();
  }

  /** A node record in force with its nodeInfo and endpoint in force (model.ts activeNodeOf, by slot). */
  activeNodeOf(record: Decoded<'node'>): ReturnType<RecordSlots['activeNodeOf']> {
    return this.slots.activeNodeOf(record);
  }

  /** Full derives so far (each a pass over every record: rare once loaded). */
  get fullDerives(): number {
    return this.slots.fullDerives;
  }

  /** Open the profile's joined network, acting as `as` (default: owner, else node, else member). */
  static async open(ctx: ControlContext, opts: { joined?: JoinedNetwork; as?: ActorRole } = {}): Promise<NetworkSession> {
    const joined = opts.joined ?? requireJoinedNetwork(networkDir(ctx));
    const role = opts.as ?? pickRole(joined.roles);
    if (!joined.roles.includes(role)) throw new MeshdError('E_NOT_OWNER', `this identity is not a ${role} of the network`);
    return NetworkSession.forNetwork(ctx, joined, role);
  }

  static async forNetwork(ctx: ControlContext, joined: JoinedNetwork, role: ActorRole, dwn?: Awaited<ReturnType<typeof openDwn>>): Promise<NetworkSession> {
    const { client, lease } = dwn ?? (await openDwn(ctx, joined.endpoint, joined.embedded));
    const keys = { xPrivate: ctx.profile.keys.xPrivate, xPublic: ctx.profile.keys.xPublic };
    const keyring = role === 'owner' ? Keyring.forOwner(keys, joined.networkId) : new Keyring(keys);
    const acc: NetworkAccess = { client: client(joined.anchor), networkId: joined.networkId, anchor: joined.anchor, role, keyring };
    return new NetworkSession(ctx, joined, acc, lease);
  }

  get role(): ActorRole {
    return this.acc.role;
  }

  get client(): DwnClient {
    return this.acc.client;
  }

  get me(): string {
    return this.ctx.profile.did;
  }

  async close(): Promise<void> {
    await this.lease?.release();
  }

  /**
   * Re-read every record of the given kinds (key deliveries first, so new keys open the rest):
   * what the DWN returns replaces what was known of those kinds.
   */
  async load(kinds: RecordKind[]): Promise<RecordSet> {
    const ordered = [...new Set(kinds)].sort((a, b) => (a === 'keyDelivery' ? -1 : b === 'keyDelivery' ? 1 : 0));
    for (const kind of ordered) {
      const recs = await fetchKind(this.acc, kind, this.skips, this.decoded, this.now()).catch((e: unknown) => {
        throw this.role !== 'owner' && isRoleRefused(e) ? removedError(markRemoved(networkDir(this.ctx), new Date().toISOString()) ?? this.joined) : e;
      });
      const held = new Map<string, Decoded>();
      this.slots.invalidate();
      for (const [slot, r] of this.slots.entries()) if (r.kind === kind) held.set(slot, r);
      const now = this.now();
      for (const slot of held.keys()) this.slots.delete(slot, now);
      for (const r of recs) {
        // what is missing from the answer was deleted; an older version than one held is a replay
        const slot = slotOf(kind, r.recordId, r.contextId);
        const h = held.get(slot);
        if (h && h.recordId === r.recordId && h.timestamp > r.timestamp) {
          recordSkip(this.skips, kind, r.recordId, r.timestamp, 'rollback', `the DWN returned a version older than ${h.timestamp}`);
          this.slots.put(slot, h, now);
        } else {
          this.slots.put(slot, r, now);
        }
      }
      if (kind === 'keyDelivery') this.keysLearned += absorbKeyDeliveries(this.acc, recs as Decoded<'keyDelivery'>[]).length;
    }
    return this.derive();
  }

  /**
   * Take in records named by subscription events: each is read (one request) unless its bytes
   * are already known — a heartbeat re-write costs nothing but a signature check — or the event
   * carried them. A version
   * older than the one held is ignored. Returns the kinds that changed.
   */
  async ingest(messages: RecordsWriteMessage[]): Promise<Set<RecordKind>> {
    const changed = new Set<RecordKind>();
    this.failedSlots.clear();
    this.waitedInLastIngest = 0;
    // what is to be read is fetched up front (a few reads at a time, or one query for many
    // records of a kind: a key rotation names every record at once); the answers are taken in
    // the events' order, as one by one
    const toRead: Array<[RecordKind, RecordsWriteMessage]> = [];
    for (const msg of messages) {
      const kind = kindOfPath(msg.descriptor?.protocolPath ?? '');
      if (kind && typeof msg.recordId === 'string' && this.needsRead(kind, msg)) toRead.push([kind, msg]);
    }
    const answers = toRead.length > 0 ? fetchEventRecords(this.acc, toRead, this.eventReads) : NO_ANSWERS;
    for (const msg of messages) {
      const kind = kindOfPath(msg.descriptor?.protocolPath ?? '');
      if (!kind || typeof msg.recordId !== 'string') continue;
      const slot = slotOf(kind, msg.recordId, msg.contextId);
      const held = this.slots.get(slot);
      if (held && held.timestamp >= msg.descriptor.messageTimestamp) continue;
      let d: Decoded | undefined;
      this.skips.lastReason = null;
      const pending = answers.get(msg);
      if (pending === undefined && this.decoded.get(DecodeCache.key(msg.recordId, msg.descriptor.dataCid))) {
        d = await decodeCached(this.acc, kind, msg, this.skips, this.decoded, this.now());
      } else if (pending === undefined && hasInlineData(msg)) {
        // the event brought the data (as a query entry does): checked against its dataCid, no read
        d = await decodeEntry(this.acc, kind, msg, this.skips, undefined, this.now(), this.decoded.initialWrites);
        if (d) this.decoded.set(DecodeCache.key(d.recordId, d.dataCid), d);
      } else {
        const a = await (pending ?? fetchEventRecords(this.acc, [[kind, msg]], this.eventReads).get(msg)!);
        if ('gone' in a) {
          // deleted since the event (only the owner is told of deletes): what this slot holds
          // of that record is gone too — a revoked node's tombstone read after its deletion
          // must not leave the node in the map
          if (held && held.recordId === msg.recordId) {
            this.slots.delete(slot, this.now());
            changed.add(kind);
          }
          continue;
        }
        d =
          'read' in a
            ? await decodeEntry(this.acc, kind, a.read.message, this.skips, a.read.data, this.now(), this.decoded.initialWrites)
            : await decodeEntry(this.acc, kind, a.entry, this.skips, undefined, this.now(), this.decoded.initialWrites);
        if (d) this.decoded.set(DecodeCache.key(d.recordId, d.dataCid), d);
      }
      if (!d) {
        this.failedSlots.add(slot);
        if (this.skips.lastReason === 'unknown-key') {
          this.waitForKey(slot, msg);
          this.waitedInLastIngest++;
        }
        continue;
      }
      this.waitingForKey.delete(slot);
      const cur = this.slots.get(slot);
      if (cur && cur.timestamp >= d.timestamp) continue;
      this.slots.put(slot, d, this.now());
      if (cur && sameContent(cur, d)) {
        // the same record re-written with the same content (a key rotation re-encrypts every
        // record): the set takes the new version, the map has nothing to change
        this.contentRewrites++;
        continue;
      }
      changed.add(kind);
      if (kind === 'keyDelivery') this.keysLearned += absorbKeyDeliveries(this.acc, [d as Decoded<'keyDelivery'>]).length;
    }
    // the epoch rules moved (a network record, the grace's end): what that changed counts too
    for (const k of this.slots.settle(this.now())) changed.add(k);
    return changed;
  }

  /** An event's record is newer than the one held, its bytes are not known and it did not bring them: it must be read. */
  private needsRead(kind: RecordKind, msg: RecordsWriteMessage): boolean {
    const held = this.slots.get(slotOf(kind, msg.recordId, msg.contextId));
    if (held && held.timestamp >= msg.descriptor.messageTimestamp) return false;
    return !this.decoded.get(DecodeCache.key(msg.recordId, msg.descriptor.dataCid)) && !hasInlineData(msg);
  }

  private waitForKey(slot: string, msg: RecordsWriteMessage): void {
    if (this.waitingForKey.size === 0) this.keysAtRetry = this.keysLearned; // waits for a key newer than these
    const prev = this.waitingForKey.get(slot);
    if (prev && prev.descriptor.messageTimestamp >= msg.descriptor.messageTimestamp) return;
    this.waitingForKey.delete(slot);
    this.waitingForKey.set(slot, msg);
    if (this.waitingForKey.size > MAX_WAITING_FOR_KEY) this.waitingForKey.delete(this.waitingForKey.keys().next().value!);
  }

  /**
   * A key came since the waiting records were last read again (or that re-read failed): read
   * them again now, whichever refresh learned the key.
   */
  get keyRetryDue(): boolean {
    return this.waitingForKey.size > 0 && this.keysLearned !== this.keysAtRetry;
  }

  /** How many records wait for a network key this device does not hold yet. */
  get waitingForKeyCount(): number {
    return this.waitingForKey.size;
  }

  /**
   * Keys arrived: read again the records that waited for one (each one request). Those that
   * still do not open wait on. Returns the kinds that changed and the messages retried.
   */
  async retryWaitingForKey(): Promise<{ changed: Set<RecordKind>; retried: RecordsWriteMessage[] }> {
    const retried = [...this.waitingForKey.values()];
    const keysBefore = this.keysAtRetry;
    this.keysAtRetry = this.keysLearned;
    this.waitingForKey.clear();
    try {
      return { changed: retried.length > 0 ? await this.ingest(retried) : new Set(), retried };
    } catch (e) {
      // a read failed: what was not read yet waits on, and the next refresh reads it again
      for (const m of retried) {
        const kind = kindOfPath(m.descriptor?.protocolPath ?? '');
        if (!kind) continue;
        const slot = slotOf(kind, m.recordId, m.contextId);
        const held = this.slots.get(slot);
        if (!held || held.timestamp < m.descriptor.messageTimestamp) this.waitForKey(slot, m);
      }
      this.keysAtRetry = keysBefore;
      throw e;
    }
  }

  /** The newest record read in a node's nodeInfo or endpoint slot, whatever its epoch. */
  nodeRecordOf<K extends 'nodeInfo' | 'endpoint'>(kind: K, nodeContextId: string): Decoded<K> | undefined {
    return this.slots.get(nodeSlot(kind, nodeContextId)) as Decoded<K> | undefined;
  }

  /** Forget a record (a delete the owner was told of). */
  forget(recordId: string): boolean {
    const now = this.now();
    const gone: string[] = [];
    for (const [slot, r] of this.slots.entries()) if (r.recordId === recordId) gone.push(slot);
    for (const slot of gone) this.slots.delete(slot, now);
    if (gone.length > 0) this.slots.settle(now);
    return gone.length > 0;
  }

  /**
   * Apply the epoch rules to every record read (a full derive: record-slots.ts). Changes keep the
   * set current by themselves; this is for a caller that wants the rules applied as of now.
   */
  derive(): RecordSet {
    this.slots.derive(this.now());
    return this.set;
  }

  network(): Decoded<'network'> {
    const n = currentNetwork(this.set, this.joined.networkId, this.joined.anchor);
    if (!n) {
      throw new MeshdError('E_NO_NETWORK', `cannot read network ${this.joined.networkId} on the DWN at ${this.client.endpoint}`, {
        hint: this.role === 'owner' ? 'check the endpoint' : 'the owner may not have delivered the network key to this device yet',
      });
    }
    return n;
  }

  /** Recipients of a member-readable record written by this identity under `epoch`. */
  recipients(epoch: number): JweRecipient[] {
    return this.acc.keyring.recipientsFor(epoch);
  }

  async encrypt<K extends RecordKind>(kind: K, data: RecordTypes[K], recipients: JweRecipient[]): Promise<Uint8Array> {
    const valid = validateRecord(kind, data, 'write');
    const bytes = await encryptJson(valid, recipients);
    if (bytes.length > MAX_DATA_SIZE[kind]) {
      throw new MeshdError('E_RECORD_INVALID', `${kind} record is too large (${bytes.length} bytes encrypted, at most ${MAX_DATA_SIZE[kind]})`);
    }
    return bytes;
  }

  /** Write a new record. */
  async writeNew<K extends RecordKind>(kind: K, data: RecordTypes[K], o: WriteNewOptions): Promise<RecordRef<K>> {
    const bytes = await this.encrypt(kind, data, o.recipients);
    const w = await this.client.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS[kind],
      data: bytes,
      dataFormat: DATA_FORMAT,
      ...(o.parentContextId !== undefined ? { parentContextId: o.parentContextId } : {}),
      ...(o.recipient !== undefined ? { recipient: o.recipient } : {}),
      ...(o.tags !== undefined ? { tags: o.tags } : {}),
      ...(o.protocolRole !== undefined ? { protocolRole: o.protocolRole } : {}),
      ...(this.writeTimeoutMs !== undefined ? { timeoutMs: this.writeTimeoutMs } : {}),
    });
    const ref: RecordRef<K> = {
      kind,
      recordId: w.recordId,
      contextId: w.contextId ?? w.recordId,
      parentContextId: o.parentContextId ?? '',
      recipient: o.recipient,
      dateCreated: w.message.descriptor.dateCreated,
    };
    this.remember(ref, data, w.message, bytes, o.recipients);
    return ref;
  }

  /** Write a new version of an existing record this identity created. */
  async update<K extends RecordKind>(rec: RecordRef<K>, data: RecordTypes[K], recipients: JweRecipient[]): Promise<void> {
    const bytes = await this.encrypt(rec.kind, data, recipients);
    await this.rewrite(rec, bytes, data, recipients);
  }

  /**
   * Write the same bytes again as a new version of `rec` (a heartbeat): readers that hold the
   * bytes see a newer time and read nothing. False when this session never wrote the record.
   */
  async touch<K extends RecordKind>(rec: RecordRef<K>): Promise<boolean> {
    const own = this.own.get(rec.recordId);
    if (!own) return false;
    await this.rewrite(rec, own.bytes, own.data as RecordTypes[K], own.recipients);
    return true;
  }

  private async rewrite<K extends RecordKind>(rec: RecordRef<K>, bytes: Uint8Array, data: RecordTypes[K], recipients: JweRecipient[]): Promise<void> {
    const w = await this.client.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS[rec.kind],
      data: bytes,
      dataFormat: DATA_FORMAT,
      recordId: rec.recordId,
      dateCreated: rec.dateCreated,
      ...(rec.parentContextId !== '' ? { parentContextId: rec.parentContextId } : {}),
      ...(rec.recipient !== undefined ? { recipient: rec.recipient } : {}),
      ...(this.writeTimeoutMs !== undefined ? { timeoutMs: this.writeTimeoutMs } : {}),
    });
    this.remember(rec, data, w.message, bytes, recipients);
  }

  /** What this session wrote last, per record (its own records only: a few). */
  private readonly own = new Map<string, { bytes: Uint8Array; data: unknown; recipients: JweRecipient[] }>();

  /** Put a record this identity just wrote into the model, as a reader would decode it. */
  private remember<K extends RecordKind>(ref: RecordRef<K>, data: RecordTypes[K], message: RecordsWriteMessage, bytes: Uint8Array, recipients: JweRecipient[]): void {
    this.own.set(ref.recordId, { bytes, data, recipients });
    if (this.own.size > 256) this.own.delete(this.own.keys().next().value!);
    let epoch: number | undefined;
    for (const r of recipients) epoch ??= this.acc.keyring.network(r.kid)?.epoch;
    const d: Decoded<K> = {
      ...ref,
      parentId: message.descriptor.parentId,
      author: this.me,
      timestamp: message.descriptor.messageTimestamp,
      epoch,
      dataCid: message.descriptor.dataCid,
      data,
    };
    this.decoded.set(DecodeCache.key(d.recordId, d.dataCid), d);
    const slot = slotOf(ref.kind, ref.recordId, ref.contextId);
    const cur = this.slots.get(slot);
    if (cur && cur.recordId === ref.recordId && cur.timestamp > d.timestamp) return;
    const now = this.now();
    this.slots.put(slot, d, now);
    this.slots.settle(now);
  }
}

/** An event's message that carries its record's data (a DWN that sends it: dwn/server-event-data.ts). */
/**
 * Kinds whose new version with the same content changes nothing a reader derives: not an
 * endpoint (its write time is the device's liveness: a heartbeat), a network record (its epoch is
 * in its content anyway) or a key delivery (its key is learned on the way in).
 */
const CONTENT_ONLY: ReadonlySet<RecordKind> = new Set<RecordKind>(['node', 'nodeInfo', 'member', 'aclPolicy', 'relay']);

/** A new version of the same record, by the same author, with the same content. */
function sameContent(held: Decoded, next: Decoded): boolean {
  return CONTENT_ONLY.has(next.kind) && held.recordId === next.recordId && held.author === next.author && (held.dataCid === next.dataCid || canonicalJson(held.data) === canonicalJson(next.data));
}

const NO_ANSWERS: ReturnType<typeof fetchEventRecords> = new Map();

function hasInlineData(msg: RecordsWriteMessage): boolean {
  return typeof (msg as { encodedData?: unknown }).encodedData === 'string';
}

/** The DWN refuses this identity's role: its role record is gone (it was removed). */
export function isRoleRefused(e: unknown): boolean {
  return e instanceof DwnError && e.status === 401 && /RoleRecordNotFound|ActionNotAllowed/.test(e.detail ?? e.message);
}

export function pickRole(roles: ActorRole[]): ActorRole {
  if (roles.includes('owner')) return 'owner';
  if (roles.includes('node')) return 'node';
  return 'member';
}

/** Refuse an owner-only operation with a clear one-line error. */
export function requireOwner(s: NetworkSession, what: string): void {
  if (s.role !== 'owner') {
    throw new MeshdError('E_NOT_OWNER', `only the network owner can ${what}`, {
      hint: `the owner is ${s.joined.anchor}`,
    });
  }
}


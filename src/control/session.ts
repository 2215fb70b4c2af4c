/**
 * One command's (or the daemon's) access to the joined network: the DWN client, the keyring,
 * the records read so far, and the write helpers that validate, encrypt and sign.
 */
import type { Profile } from '../identity/profile.js';
import { parseDidJwk } from '../identity/did-jwk.js';
import { x25519PublicFromEd25519 } from '../identity/keys.js';
import { MeshdError } from '../errors.js';
import { DwnClient } from '../dwn/client.js';
import { encryptJson, type JweRecipient } from './crypto.js';
import { leaseEmbeddedDwn, type EmbeddedLease } from './embedded.js';
import { Keyring } from './keyring.js';
import { requireJoinedNetwork, type JoinedNetwork } from './local-state.js';
import { currentNetwork, emptyRecordSet, type RecordSet } from './model.js';
import { DATA_FORMAT, MAX_DATA_SIZE, PATHS, PROTOCOL_URI, type RecordKind } from './protocol.js';
import { absorbKeyDeliveries, fetchKind, newSkipLog, type ActorRole, type Decoded, type DecodeCache, type NetworkAccess, type SkipLog } from './reader.js';
import { validateRecord, type RecordTypes } from './records.js';

export interface ControlContext {
  home: string;
  profile: Profile;
  /** Per-call DWN timeout in ms (default 10 s). */
  timeoutMs?: number;
  /** Progress lines for long operations. */
  progress?: (line: string) => void;
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
  private readonly decoded: DecodeCache = new Map();
  set: RecordSet = emptyRecordSet();
  private readonly lease: EmbeddedLease | undefined;

  private constructor(ctx: ControlContext, joined: JoinedNetwork, acc: NetworkAccess, lease: EmbeddedLease | undefined) {
    this.ctx = ctx;
    this.joined = joined;
    this.acc = acc;
    this.lease = lease;
  }

  /** Open the profile's joined network, acting as `as` (default: owner, else node, else member). */
  static async open(ctx: ControlContext, opts: { joined?: JoinedNetwork; as?: ActorRole } = {}): Promise<NetworkSession> {
    const joined = opts.joined ?? requireJoinedNetwork(ctx.profile.dir);
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

  /** Re-read records of the given kinds (key deliveries first, so new keys open the rest). */
  async load(kinds: RecordKind[]): Promise<RecordSet> {
    const ordered = [...new Set(kinds)].sort((a, b) => (a === 'keyDelivery' ? -1 : b === 'keyDelivery' ? 1 : 0));
    for (const kind of ordered) {
      const recs = await fetchKind(this.acc, kind, this.skips, this.decoded);
      (this.set as Record<RecordKind, Decoded[]>)[kind] = recs;
      if (kind === 'keyDelivery') absorbKeyDeliveries(this.acc, recs as Decoded<'keyDelivery'>[]);
    }
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
    });
    const contextId = w.contextId ?? w.recordId;
    return {
      kind,
      recordId: w.recordId,
      contextId,
      parentContextId: o.parentContextId ?? '',
      recipient: o.recipient,
      dateCreated: w.message.descriptor.dateCreated,
    };
  }

  /** Write a new version of an existing record this identity created. */
  async update<K extends RecordKind>(rec: RecordRef<K>, data: RecordTypes[K], recipients: JweRecipient[], tags?: Record<string, string | number>): Promise<void> {
    const bytes = await this.encrypt(rec.kind, data, recipients);
    await this.client.write({
      protocol: PROTOCOL_URI,
      protocolPath: PATHS[rec.kind],
      data: bytes,
      dataFormat: DATA_FORMAT,
      recordId: rec.recordId,
      dateCreated: rec.dateCreated,
      ...(rec.parentContextId !== '' ? { parentContextId: rec.parentContextId } : {}),
      ...(rec.recipient !== undefined ? { recipient: rec.recipient } : {}),
      ...(tags !== undefined ? { tags } : {}),
    });
  }
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


/**
 * A DWN client for one tenant: messages built and signed by this device's key (./messages.ts,
 * the SDK's message formats without loading the SDK), sent over JSON-RPC/HTTP. Failures are
 * DwnErrors carrying the server's status and detail.
 */
import type {
  GenericMessage,
  ProtocolDefinition,
  RecordsFilter,
  RecordsQueryReplyEntry,
  RecordsWriteMessage,
  RecordsWriteTags,
} from '@tbd54566975/dwn-sdk-js';
import {
  createProtocolsConfigure,
  createProtocolsQuery,
  createRecordsDelete,
  createRecordsQuery,
  createRecordsRead,
  createRecordsSubscribe,
  createRecordsWrite,
  DateSort,
  type PaginationCursor,
} from './messages.js';
import { DwnHttpRpc, expectOk, type HttpRpcOptions } from './rpc-http.js';
import { deviceSigner, type DeviceIdentity } from './signer.js';
import { compareText } from '../util/compare.js';

export interface WriteOptions {
  protocol: string;
  protocolPath: string;
  data: Uint8Array;
  dataFormat: string;
  recipient?: string;
  parentContextId?: string;
  protocolRole?: string;
  tags?: RecordsWriteTags;
  /** Given for an update of an existing record (with its dateCreated). */
  recordId?: string;
  dateCreated?: string;
  /** This write's own timeout (the client's otherwise). */
  timeoutMs?: number;
}

export interface WrittenRecord {
  recordId: string;
  contextId: string | undefined;
  message: RecordsWriteMessage;
}

export interface QueryOptions {
  protocolRole?: string;
  /** Stop after this many entries (pages are followed until then). Default 100,000. */
  max?: number;
  /** Default newest first, so that a flood of old records cannot push new ones past `max`. */
  dateSort?: DateSort;
}

export class DwnClient {
  readonly rpc: DwnHttpRpc;
  /** The tenant whose DWN this client talks to (the network owner). */
  readonly target: string;
  readonly me: DeviceIdentity;

  constructor(endpoint: string, target: string, me: DeviceIdentity, opts: HttpRpcOptions = {}) {
    this.rpc = new DwnHttpRpc(endpoint, opts);
    this.target = target;
    this.me = me;
  }

  get endpoint(): string {
    return this.rpc.endpoint;
  }

  private signer() {
    return deviceSigner(this.me);
  }

  async configureProtocol(definition: ProtocolDefinition): Promise<void> {
    const message = await createProtocolsConfigure({ definition, signer: this.signer() });
    const { reply } = await this.rpc.processMessage(this.target, message);
    expectOk(reply, this.endpoint, 'installing the protocol');
  }

  /** The installed definition of `protocol`, or undefined. */
  async queryProtocol(protocol: string): Promise<ProtocolDefinition | undefined> {
    const message = await createProtocolsQuery({ filter: { protocol }, signer: this.signer() });
    const { reply } = await this.rpc.processMessage(this.target, message);
    expectOk(reply, this.endpoint, 'querying the protocol');
    const entries = (reply.entries ?? []) as Array<{ descriptor: { definition: ProtocolDefinition; messageTimestamp: string } }>;
    entries.sort((a, b) => compareText(a.descriptor.messageTimestamp, b.descriptor.messageTimestamp));
    return entries.at(-1)?.descriptor.definition;
  }

  async write(o: WriteOptions): Promise<WrittenRecord> {
    const message = await createRecordsWrite({
      protocol: o.protocol,
      protocolPath: o.protocolPath,
      data: o.data,
      dataFormat: o.dataFormat,
      ...(o.recipient !== undefined ? { recipient: o.recipient } : {}),
      ...(o.parentContextId !== undefined ? { parentContextId: o.parentContextId } : {}),
      ...(o.protocolRole !== undefined ? { protocolRole: o.protocolRole } : {}),
      ...(o.tags !== undefined ? { tags: o.tags } : {}),
      ...(o.recordId !== undefined ? { recordId: o.recordId } : {}),
      ...(o.dateCreated !== undefined ? { dateCreated: o.dateCreated } : {}),
      signer: this.signer(),
    });
    const { reply } = await this.rpc.processMessage(this.target, message, o.data, o.timeoutMs);
    expectOk(reply, this.endpoint, `writing ${o.protocolPath}`);
    return { recordId: message.recordId, contextId: message.contextId, message };
  }

  /** All records matching `filter` (newest state of each), following pagination. */
  async query(filter: RecordsFilter, opts: QueryOptions = {}): Promise<RecordsQueryReplyEntry[]> {
    const max = opts.max ?? 100_000;
    const out: RecordsQueryReplyEntry[] = [];
    let cursor: PaginationCursor | undefined;
    do {
      const message = await createRecordsQuery({
        filter,
        dateSort: opts.dateSort ?? DateSort.CreatedDescending,
        pagination: { limit: 100, ...(cursor ? { cursor } : {}) },
        ...(opts.protocolRole !== undefined ? { protocolRole: opts.protocolRole } : {}),
        signer: this.signer(),
      });
      const { reply } = await this.rpc.processMessage(this.target, message);
      expectOk(reply, this.endpoint, `querying ${filter.protocolPath ?? 'records'}`);
      out.push(...((reply.entries ?? []) as RecordsQueryReplyEntry[]));
      cursor = reply.cursor as PaginationCursor | undefined;
    } while (cursor && out.length < max);
    return out;
  }

  /**
   * Read one record with its data; undefined when the DWN has no such record. For an update the
   * message carries `initialWrite` (the creator's first version), as query entries do.
   */
  async read(recordId: string, protocolRole?: string): Promise<{ message: RecordsWriteMessage; data: Uint8Array } | undefined> {
    const request = await createRecordsRead({
      filter: { recordId },
      ...(protocolRole !== undefined ? { protocolRole } : {}),
      signer: this.signer(),
    });
    const { reply, data } = await this.rpc.processMessage(this.target, request);
    if (reply.status.code === 404) return undefined;
    expectOk(reply, this.endpoint, 'reading a record');
    const entry = reply.entry as { recordsWrite?: RecordsWriteMessage; initialWrite?: RecordsWriteMessage } | undefined;
    if (!entry?.recordsWrite) return undefined;
    const message = entry.initialWrite ? { ...entry.recordsWrite, initialWrite: entry.initialWrite } : entry.recordsWrite;
    return { message, data: data ?? new Uint8Array() };
  }

  /** `timeoutMs`: this call's own (a prune takes the record's whole subtree with it). */
  async delete(recordId: string, opts: { protocolRole?: string; prune?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const message = await createRecordsDelete({
      recordId,
      ...(opts.protocolRole !== undefined ? { protocolRole: opts.protocolRole } : {}),
      ...(opts.prune ? { prune: true } : {}),
      signer: this.signer(),
    });
    const { reply } = await this.rpc.processMessage(this.target, message, undefined, opts.timeoutMs);
    if (reply.status.code === 404) return;
    expectOk(reply, this.endpoint, 'deleting a record');
  }

  /** A fresh signed RecordsSubscribe message (for the WebSocket subscriber). */
  async subscribeMessage(filter: RecordsFilter, protocolRole?: string): Promise<GenericMessage> {
    return createRecordsSubscribe({
      filter,
      ...(protocolRole !== undefined ? { protocolRole } : {}),
      signer: this.signer(),
    });
  }
}

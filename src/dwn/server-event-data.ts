/**
 * Subscription events that carry their record's data. dwn-sdk-js stores the data of a small
 * record (up to its inline limit, 30,000 bytes) inside the message it keeps, and answers queries
 * with it inline, but the event it sends subscribers names the record without its data: each of
 * N − 1 subscribers then asks for the record with a RecordsRead, and the server checks N − 1
 * signatures and authorizations for one change. Here the event of a write whose data was stored
 * inline carries that data too (`encodedData`, as a query entry does), so subscribers read nothing.
 *
 * Nothing is disclosed that the subscriber could not read: every role of meshd's protocol that
 * may subscribe may read the same records (protocol.ts: read, query and subscribe go together),
 * and the data is what a read returns. Subscribers check the data against the message's signed
 * `dataCid` before trusting it (control/reader.ts), as they do a query's inline data.
 *
 * How: the SDK's RecordsWrite handler copies the message and adds the data to the copy it stores
 * (`cloneAndAddEncodedData`), then emits the original message; the copy's data is remembered by
 * the original message object (a WeakMap) and added to the event when it is emitted. The handler's
 * module is imported by its file URL, as server-ed25519.ts does; if the SDK's layout changes,
 * `useEventData` says why it did not apply and events go out as the SDK makes them (subscribers
 * then read each record, as before).
 */

/** The SDK files, relative to its ESM index. */
const SDK_RECORDS_WRITE = './handlers/records-write.js';
const SDK_EVENT_STREAM = './event-log/event-emitter-stream.js';

type Clone = (message: object, dataBytes: Uint8Array) => Promise<object & { encodedData?: unknown }>;
type Emit = (tenant: string, event: { message?: unknown; initialWrite?: unknown }, indexes: unknown) => void;

/** An event with the remembered data of its message, if there is any. */
export function withEventData(event: { message?: unknown }, dataOf: WeakMap<object, string>): { message?: unknown } {
  const m = event.message;
  if (typeof m !== 'object' || m === null || 'encodedData' in m) return event;
  const data = dataOf.get(m);
  return data === undefined ? event : { ...event, message: { ...m, encodedData: data } };
}

/**
 * Make RecordsWrite events carry their inline data in this process. Resolves with null when
 * applied, or with the reason it was not.
 */
export async function useEventData(): Promise<string | null> {
  try {
    const index = import.meta.resolve('@tbd54566975/dwn-sdk-js');
    const rw = (await import(new URL(SDK_RECORDS_WRITE, index).href)) as { RecordsWriteHandler?: { prototype?: { cloneAndAddEncodedData?: unknown } } };
    const es = (await import(new URL(SDK_EVENT_STREAM, index).href)) as { EventEmitterStream?: { prototype?: { emit?: unknown } } };
    const handler = rw.RecordsWriteHandler?.prototype;
    const stream = es.EventEmitterStream?.prototype;
    if (typeof handler?.cloneAndAddEncodedData !== 'function') return 'dwn-sdk-js has no RecordsWriteHandler.cloneAndAddEncodedData where expected';
    if (typeof stream?.emit !== 'function') return 'dwn-sdk-js has no EventEmitterStream.emit where expected';
    const dataOf = new WeakMap<object, string>();
    const clone = handler.cloneAndAddEncodedData as Clone;
    handler.cloneAndAddEncodedData = async function (this: unknown, message: object, dataBytes: Uint8Array) {
      const copy = await clone.call(this, message, dataBytes);
      if (typeof copy.encodedData === 'string') dataOf.set(message, copy.encodedData);
      return copy;
    };
    const emit = stream.emit as Emit;
    stream.emit = function (this: unknown, tenant: string, event: { message?: unknown }, indexes: unknown) {
      return emit.call(this, tenant, withEventData(event, dataOf), indexes);
    };
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

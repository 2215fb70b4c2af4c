/**
 * Reading what a batch of subscription events names. An event from most DWNs carries a record's
 * message but not its data (meshd's own server sends the data too: dwn/server-event-data.ts, and
 * such events are not read at all), so each named record must be fetched — how depends on how
 * many of a kind came:
 *
 *  - a few: one RecordsRead each, a few in flight at once (READ_WIDTH);
 *  - many of one kind at once (a key rotation re-encrypts every node record, endpoint and
 *    nodeInfo): one RecordsQuery for that kind, limited to what was updated since the oldest of
 *    those events (`dateUpdated`), newest first and bounded — the DWN answers every one of them
 *    with its data inline. Whatever that answer does not cover (cut off by the bound, or only an
 *    older version came back) is read one by one as above.
 *
 * The answers are handed back per event, in the events' order, for the caller to decode.
 */
import type { RecordsQueryReplyEntry, RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { prefetch } from '../util/parallel.js';
import type { RecordKind } from './protocol.js';
import { queryFor, type NetworkAccess } from './reader.js';

/** Event reads in flight at once: enough to hide round trips, few enough not to crowd the DWN. */
export const READ_WIDTH = 4;
/** From this many events of one kind in a batch, one query replaces their reads. */
export const BATCH_QUERY_MIN = 4;
/** A batch query returns at most this many entries per event it stands for (plus a margin). */
const ENTRIES_PER_EVENT = 2;
const ENTRIES_MARGIN = 16;

/** What one event's record turned out to be: read (message + data), queried (entry with data inline), or gone. */
export type EventAnswer = { read: { message: RecordsWriteMessage; data: Uint8Array } } | { entry: RecordsQueryReplyEntry } | { gone: true };

export interface EventReadCounts {
  /** RecordsRead requests. */
  reads: number;
  /** RecordsQuery requests standing in for many reads. */
  batchQueries: number;
}

/**
 * Start fetching every event's record in `wanted` (kind, message). Returns one promise per
 * event; a failure surfaces where that event's answer is awaited.
 */
export function fetchEventRecords(acc: NetworkAccess, wanted: ReadonlyArray<readonly [RecordKind, RecordsWriteMessage]>, counts: EventReadCounts): Map<RecordsWriteMessage, Promise<EventAnswer>> {
  const out = new Map<RecordsWriteMessage, Promise<EventAnswer>>();
  const byKind = new Map<RecordKind, RecordsWriteMessage[]>();
  for (const [kind, m] of wanted) {
    const list = byKind.get(kind);
    if (list) list.push(m);
    else byKind.set(kind, [m]);
  }
  const single: Array<readonly [RecordKind, RecordsWriteMessage]> = [];
  for (const [kind, list] of byKind) {
    if (list.length < BATCH_QUERY_MIN) {
      for (const m of list) single.push([kind, m]);
      continue;
    }
    // the batch's events wait for the query; those it does not cover are read one by one after it
    const settle = new Map<RecordsWriteMessage, (p: Promise<EventAnswer>) => void>();
    for (const m of list) out.set(m, new Promise<EventAnswer>((resolve) => settle.set(m, (p) => resolve(p))));
    void queryChanged(acc, kind, list, counts).then(
      (found) => {
        const rest: Array<readonly [RecordKind, RecordsWriteMessage]> = [];
        for (const m of list) {
          const e = found.get(m.recordId);
          if (e && e.descriptor.messageTimestamp >= m.descriptor.messageTimestamp) settle.get(m)!(Promise.resolve({ entry: e }));
          else rest.push([kind, m]);
        }
        const reads = readEach(acc, rest, counts);
        for (const [, m] of rest) settle.get(m)!(reads.get(m)!);
      },
      (e: unknown) => {
        const failed = Promise.reject(e);
        failed.catch(() => {});
        for (const m of list) settle.get(m)!(failed);
      },
    );
  }
  for (const [m, p] of readEach(acc, single, counts)) out.set(m, p);
  for (const p of out.values()) p.catch(() => {});
  return out;
}

/** One RecordsRead per event, READ_WIDTH in flight. */
function readEach(acc: NetworkAccess, list: ReadonlyArray<readonly [RecordKind, RecordsWriteMessage]>, counts: EventReadCounts): Map<RecordsWriteMessage, Promise<EventAnswer>> {
  const answers = prefetch(list, READ_WIDTH, async ([kind, m]): Promise<EventAnswer> => {
    counts.reads++;
    const r = await acc.client.read(m.recordId, queryFor(acc, kind).protocolRole);
    return r ? { read: r } : { gone: true };
  });
  return new Map(list.map(([, m], i) => [m, answers[i]!]));
}

/** The newest entry per record of `kind` updated since the oldest of `list`'s events (bounded). */
async function queryChanged(acc: NetworkAccess, kind: RecordKind, list: RecordsWriteMessage[], counts: EventReadCounts): Promise<Map<string, RecordsQueryReplyEntry>> {
  let from = list[0]!.descriptor.messageTimestamp;
  for (const m of list) if (m.descriptor.messageTimestamp < from) from = m.descriptor.messageTimestamp;
  const { filter, protocolRole } = queryFor(acc, kind);
  counts.batchQueries++;
  const entries = await acc.client.query(
    { ...filter, dateUpdated: { from } },
    { max: list.length * ENTRIES_PER_EVENT + ENTRIES_MARGIN, ...(protocolRole !== undefined ? { protocolRole } : {}) },
  );
  const found = new Map<string, RecordsQueryReplyEntry>();
  for (const e of entries) {
    // only entries that carry their data can stand in for a read
    if (typeof e?.recordId !== 'string' || typeof e.descriptor?.messageTimestamp !== 'string' || typeof e.encodedData !== 'string') continue;
    const cur = found.get(e.recordId);
    if (!cur || cur.descriptor.messageTimestamp < e.descriptor.messageTimestamp) found.set(e.recordId, e);
  }
  return found;
}

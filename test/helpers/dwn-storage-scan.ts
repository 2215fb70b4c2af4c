/**
 * The curious DWN operator: what the dwn-server keeps at rest, read straight from its data
 * directory. meshd's servers (src/dwn/server.ts storageUrls) keep all four stores in one SQLite
 * file, `<dataDir>/dwn.db` (dwn-sql-store tables: messageStoreMessages with the CBOR-encoded
 * message in `encodedMessageBytes` and small data inline in `encodedData`,
 * messageStoreRecordsTags, dataStore with the data blobs, eventLogMessages and its tags). Every
 * file of the directory is also read raw, so nothing hides in a journal, a WAL or a log.
 *
 *   const scan = scanDwnStorage(dwn.dataDir);
 *   scan.messages   every stored message: index columns (author, recipient, protocolPath, tags,
 *                   dataSize, …) and the decoded message
 *   scan.data       every data blob (tenant, recordId, dataCid, bytes)
 *   findOccurrences(scan, [{ label: 'wg key', bytes }])  where each needle appears, raw or as
 *                   base64, base64url or hex (any alignment)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { decode as decodeCbor } from '@ipld/dag-cbor';

/** The part of better-sqlite3's API used here (the package ships no types). */
interface SqliteDb {
  prepare(sql: string): { all(...params: unknown[]): Record<string, unknown>[] };
  close(): void;
}
type SqliteCtor = new (path: string, opts?: { readonly?: boolean; fileMustExist?: boolean }) => SqliteDb;

function openSqlite(path: string): SqliteDb {
  const require = createRequire(import.meta.url);
  // resolved from dwn-server, whose dependency it is
  const serverMain = require.resolve('@web5/dwn-server');
  const Database = createRequire(serverMain)('better-sqlite3') as SqliteCtor;
  return new Database(path, { readonly: true, fileMustExist: true });
}

export interface StoredMessage {
  /** 'messages' (messageStoreMessages) or 'events' (eventLogMessages: index columns only). */
  store: 'messages' | 'events';
  tenant: string;
  messageCid: string;
  interface: string | undefined;
  method: string | undefined;
  recordId: string | undefined;
  contextId: string | undefined;
  protocol: string | undefined;
  protocolPath: string | undefined;
  author: string | undefined;
  recipient: string | undefined;
  dataFormat: string | undefined;
  dataCid: string | undefined;
  dataSize: number | undefined;
  messageTimestamp: string | undefined;
  dateCreated: string | undefined;
  published: boolean | undefined;
  /** Tag name → value(s), from the tags table. */
  tags: Record<string, string | number | (string | number)[]>;
  /** The decoded message (with its descriptor, tags included); undefined for events. */
  message: Record<string, unknown> | undefined;
  /** The CBOR bytes as stored. */
  encodedMessage: Uint8Array | undefined;
  /** Data kept inline with the message (decoded from base64url). */
  encodedData: Uint8Array | undefined;
  /** Every column of the row as stored (blobs as Uint8Array). */
  columns: Record<string, unknown>;
}

export interface StoredData {
  tenant: string;
  recordId: string;
  dataCid: string;
  bytes: Uint8Array;
}

export interface StoredFile {
  /** Path relative to the data directory. */
  path: string;
  bytes: Uint8Array;
}

export interface StorageScan {
  dataDir: string;
  /** The SQLite file read (undefined when there was none). */
  database: string | undefined;
  /** Table names found in it. */
  tables: string[];
  messages: StoredMessage[];
  data: StoredData[];
  /** Every file under the data directory, raw (database files, journals, logs). */
  files: StoredFile[];
}

export interface ScanOptions {
  /** Also read every file raw (default true). Files over `maxFileBytes` are skipped. */
  files?: boolean;
  /** Default 256 MiB. */
  maxFileBytes?: number;
}

const s = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const n = (v: unknown): number | undefined => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : undefined);
const b = (v: unknown): boolean | undefined => (v === null || v === undefined ? undefined : Boolean(v));
const bytesOf = (v: unknown): Uint8Array | undefined => (v instanceof Uint8Array ? new Uint8Array(v) : undefined);

function listFiles(dir: string, max: number): StoredFile[] {
  const out: StoredFile[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size <= max) {
        try {
          out.push({ path: relative(dir, p), bytes: new Uint8Array(readFileSync(p)) });
        } catch {
          /* vanished */
        }
      }
    }
  };
  walk(dir);
  return out;
}

function tagsByRow(db: SqliteDb, table: string, fk: string): Map<number, Record<string, string | number | (string | number)[]>> {
  const out = new Map<number, Record<string, string | number | (string | number)[]>>();
  for (const row of db.prepare(`SELECT * FROM ${table}`).all()) {
    const id = n(row[fk]);
    const tag = s(row.tag);
    if (id === undefined || tag === undefined) continue;
    const value = row.valueString !== null && row.valueString !== undefined ? String(row.valueString) : (n(row.valueNumber) ?? NaN);
    const m = out.get(id) ?? {};
    const cur = m[tag];
    m[tag] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
    out.set(id, m);
  }
  return out;
}

/** Reads everything the dwn-server stored under `dataDir`. The server may keep running. */
export function scanDwnStorage(dataDir: string, opts: ScanOptions = {}): StorageScan {
  const files = opts.files === false ? [] : listFiles(dataDir, opts.maxFileBytes ?? 256 * 1024 * 1024);
  const dbPath = join(dataDir, 'dwn.db');
  const scan: StorageScan = { dataDir, database: undefined, tables: [], messages: [], data: [], files };
  let db: SqliteDb;
  try {
    db = openSqlite(dbPath);
  } catch {
    return scan; // no SQLite store here: only the raw files
  }
  try {
    scan.database = dbPath;
    scan.tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .all()
      .map((r) => String(r.name));
    const has = (t: string): boolean => scan.tables.includes(t);
    const fromRow = (store: StoredMessage['store'], row: Record<string, unknown>, tags: StoredMessage['tags']): StoredMessage => {
      const encodedMessage = bytesOf(row.encodedMessageBytes);
      let message: Record<string, unknown> | undefined;
      if (encodedMessage) {
        try {
          message = decodeCbor(encodedMessage) as Record<string, unknown>;
        } catch {
          message = undefined;
        }
      }
      const enc = s(row.encodedData);
      return {
        store,
        tenant: String(row.tenant),
        messageCid: String(row.messageCid),
        interface: s(row.interface),
        method: s(row.method),
        recordId: s(row.recordId),
        contextId: s(row.contextId),
        protocol: s(row.protocol),
        protocolPath: s(row.protocolPath),
        author: s(row.author),
        recipient: s(row.recipient),
        dataFormat: s(row.dataFormat),
        dataCid: s(row.dataCid),
        dataSize: n(row.dataSize),
        messageTimestamp: s(row.messageTimestamp),
        dateCreated: s(row.dateCreated),
        published: b(row.published),
        tags,
        message,
        encodedMessage,
        encodedData: enc !== undefined ? new Uint8Array(Buffer.from(enc, 'base64url')) : undefined,
        columns: row,
      };
    };
    if (has('messageStoreMessages')) {
      const tags = has('messageStoreRecordsTags') ? tagsByRow(db, 'messageStoreRecordsTags', 'messageInsertId') : new Map();
      for (const row of db.prepare('SELECT * FROM messageStoreMessages ORDER BY id').all()) scan.messages.push(fromRow('messages', row, tags.get(n(row.id) ?? -1) ?? {}));
    }
    if (has('eventLogMessages')) {
      const tags = has('eventLogRecordsTags') ? tagsByRow(db, 'eventLogRecordsTags', 'eventWatermark') : new Map();
      for (const row of db.prepare('SELECT * FROM eventLogMessages ORDER BY watermark').all()) scan.messages.push(fromRow('events', row, tags.get(n(row.watermark) ?? -1) ?? {}));
    }
    if (has('dataStore')) {
      for (const row of db.prepare('SELECT * FROM dataStore ORDER BY id').all()) {
        scan.data.push({ tenant: String(row.tenant), recordId: String(row.recordId), dataCid: String(row.dataCid), bytes: bytesOf(row.data) ?? new Uint8Array() });
      }
    }
  } finally {
    db.close();
  }
  return scan;
}

// ---- searching -------------------------------------------------------------------------------

export interface Needle {
  label: string;
  /** The secret; a string is taken as UTF-8. */
  bytes: Uint8Array | string;
}

export type NeedleEncoding = 'raw' | 'base64' | 'base64url' | 'hex';

export interface Occurrence {
  label: string;
  encoding: NeedleEncoding;
  /** message: the stored CBOR or its decoded JSON; column: an index column or tag; encodedData:
   *  inline data; data: a data blob; file: a raw file of the data directory. */
  where: 'message' | 'column' | 'encodedData' | 'data' | 'file';
  /** Column/tag name for 'column'; file path for 'file'. */
  field: string | undefined;
  messageCid: string | undefined;
  recordId: string | undefined;
  protocolPath: string | undefined;
  offset: number;
}

/**
 * The forms of a needle as they could appear inside a larger encoded text. For base64 and
 * base64url, one fragment per alignment (0, 1, 2 bytes before it), holding only the characters
 * that depend on the needle alone (a fragment without + / - _ matches as both base64 and
 * base64url and is reported under both); needles under 4 bytes are searched raw and hex only (their
 * base64 fragments would match by chance).
 */
export function needleForms(bytes: Uint8Array): { encoding: NeedleEncoding; pattern: Buffer }[] {
  const raw = Buffer.from(bytes);
  const forms: { encoding: NeedleEncoding; pattern: Buffer }[] = [
    { encoding: 'raw', pattern: raw },
    { encoding: 'hex', pattern: Buffer.from(raw.toString('hex')) },
    { encoding: 'hex', pattern: Buffer.from(raw.toString('hex').toUpperCase()) },
  ];
  if (raw.length >= 4) {
    for (const enc of ['base64', 'base64url'] as const) {
      const seen = new Set<string>();
      for (let k = 0; k < 3; k++) {
        const text = Buffer.concat([Buffer.alloc(k), raw]).toString(enc).replace(/=+$/, '');
        const from = Math.ceil((8 * k) / 6);
        const to = Math.floor((8 * (k + raw.length)) / 6);
        const frag = text.slice(from, to);
        if (frag.length >= 4 && !seen.has(frag)) {
          seen.add(frag);
          forms.push({ encoding: enc, pattern: Buffer.from(frag) });
        }
      }
    }
  }
  // the upper-case hex of a needle without letters is its lower-case hex
  const unique = new Map<string, { encoding: NeedleEncoding; pattern: Buffer }>();
  for (const f of forms) unique.set(`${f.encoding}:${f.pattern.toString('latin1')}`, f);
  return [...unique.values()];
}

function indexesOf(hay: Buffer, pattern: Buffer): number[] {
  const out: number[] = [];
  if (pattern.length === 0) return out;
  for (let i = hay.indexOf(pattern); i >= 0; i = hay.indexOf(pattern, i + 1)) out.push(i);
  return out;
}

/** Where each needle appears in the scan (raw, base64, base64url or hex). */
export function findOccurrences(scan: StorageScan, needles: Needle[]): Occurrence[] {
  const haystacks: { hay: Buffer; where: Occurrence['where']; field?: string; m?: StoredMessage; recordId?: string }[] = [];
  for (const m of scan.messages) {
    if (m.encodedMessage) haystacks.push({ hay: Buffer.from(m.encodedMessage), where: 'message', m });
    if (m.message) haystacks.push({ hay: Buffer.from(JSON.stringify(m.message, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64url') : v))), where: 'message', field: 'json', m });
    for (const [k, v] of Object.entries(m.columns)) {
      if (k === 'encodedMessageBytes' || v === null || v === undefined) continue;
      haystacks.push({ hay: v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v)), where: k === 'encodedData' ? 'encodedData' : 'column', field: k, m });
    }
    if (m.encodedData) haystacks.push({ hay: Buffer.from(m.encodedData), where: 'encodedData', field: 'decoded', m });
    for (const [k, v] of Object.entries(m.tags)) haystacks.push({ hay: Buffer.from(`${k}=${JSON.stringify(v)}`), where: 'column', field: `tag:${k}`, m });
  }
  for (const d of scan.data) haystacks.push({ hay: Buffer.from(d.bytes), where: 'data', recordId: d.recordId });
  for (const f of scan.files) haystacks.push({ hay: Buffer.from(f.bytes), where: 'file', field: f.path });

  const out: Occurrence[] = [];
  for (const needle of needles) {
    const bytes = typeof needle.bytes === 'string' ? new Uint8Array(Buffer.from(needle.bytes, 'utf8')) : needle.bytes;
    for (const form of needleForms(bytes)) {
      for (const h of haystacks) {
        for (const offset of indexesOf(h.hay, form.pattern)) {
          out.push({
            label: needle.label,
            encoding: form.encoding,
            where: h.where,
            field: h.field,
            messageCid: h.m?.messageCid,
            recordId: h.m?.recordId ?? h.recordId,
            protocolPath: h.m?.protocolPath,
            offset,
          });
        }
      }
    }
  }
  return out;
}

/**
 * The two CIDs DWN messages carry, computed as dwn-sdk-js 0.5.2 computes them but without
 * loading the SDK (whose index alone costs the daemon ~58 MB):
 *  - `computeCid`: CIDv1, DAG-CBOR codec, SHA-256 of the DAG-CBOR encoding (descriptors,
 *    entry ids, message CIDs);
 *  - `computeDagPbCidFromBytes`: the CID the SDK's UnixFS importer gives record data with its
 *    defaults (CIDv1, raw leaves, 256 KiB chunks, a single leaf reduced to itself). For data up
 *    to one chunk that is the raw-codec CID of the bytes themselves; larger data would need a
 *    dag-pb tree, which meshd never writes (the protocol caps record data far below a chunk),
 *    so it is refused.
 * Both are checked against the SDK in test/unit/dwn-messages.test.ts.
 */
import { createHash } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';
import { DwnMessageError } from '../errors.js';

/** Multicodec code of SHA-256. */
const SHA2_256 = 0x12;
/** Multicodec code of raw bytes. */
const RAW = 0x55;
/** The importer's default chunk size: data up to this size is a single raw leaf. */
export const UNIXFS_CHUNK_SIZE = 262_144;

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

/**
 * The DAG-CBOR encoding of `value` (throws DwnMessageError for what DAG-CBOR cannot encode).
 * What a DWN message is made of — plain objects, arrays, ASCII strings, safe integers, booleans
 * and null, as JSON.parse gives them — is encoded by `encodeJsonDagCbor`, the rest by
 * @ipld/dag-cbor; both give the same bytes (test/unit/dwn-cid.test.ts).
 */
export function encodeDagCbor(value: unknown): Uint8Array {
  const fast = encodeJsonDagCbor(value);
  if (fast !== undefined) return fast;
  try {
    return dagCbor.encode(value);
  } catch (cause) {
    throw new DwnMessageError(`cannot encode as DAG-CBOR: ${(cause as Error).message}`, { cause });
  }
}

/** Nesting past this depth goes to @ipld/dag-cbor (which refuses cycles). */
const MAX_FAST_DEPTH = 32;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** A growable byte buffer for the encoder below. */
class ByteWriter {
  buf = Buffer.allocUnsafe(512);
  len = 0;

  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** A CBOR head: major type and argument, in the shortest form (as DAG-CBOR requires). */
  head(major: number, n: number): void {
    this.reserve(9);
    const b = this.buf;
    const m = major << 5;
    if (n < 24) b[this.len++] = m | n;
    else if (n < 0x100) {
      b[this.len++] = m | 24;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = m | 25;
      b.writeUInt16BE(n, this.len);
      this.len += 2;
    } else if (n < 0x100000000) {
      b[this.len++] = m | 26;
      b.writeUInt32BE(n, this.len);
      this.len += 4;
    } else {
      b[this.len++] = m | 27;
      b.writeUInt32BE(Math.floor(n / 0x100000000), this.len);
      b.writeUInt32BE(n >>> 0, this.len + 4);
      this.len += 8;
    }
  }

  ascii(s: string): void {
    this.head(3, s.length);
    this.reserve(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
}

/** DAG-CBOR map order: shorter keys first, then bytewise (for ASCII keys: code unit order). */
function keyOrder(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** False when `v` is outside what the fast encoder takes (the caller then uses @ipld/dag-cbor). */
function writeJson(w: ByteWriter, v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
      if (!isAscii(v)) return false;
      w.ascii(v);
      return true;
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) return false;
      if (v >= 0) w.head(0, v);
      else w.head(1, -1 - v);
      return true;
    case 'boolean':
      w.reserve(1);
      w.buf[w.len++] = v ? 0xf5 : 0xf4;
      return true;
    case 'object': {
      if (v === null) {
        w.reserve(1);
        w.buf[w.len++] = 0xf6;
        return true;
      }
      if (depth >= MAX_FAST_DEPTH) return false;
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (let i = 0; i < v.length; i++) if (!writeJson(w, v[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort(keyOrder);
      w.head(5, keys.length);
      for (const k of keys) {
        if (!isAscii(k)) return false;
        w.ascii(k);
        if (!writeJson(w, o[k], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false; // undefined, bigint, functions, symbols: DAG-CBOR's own answer (mostly an error)
  }
}

/**
 * DAG-CBOR of a JSON-like value — plain objects, arrays, ASCII strings, safe integers, booleans,
 * null — without @ipld/dag-cbor's token tree (several times faster: every event's signature
 * check encodes a descriptor twice). Undefined for anything else.
 */
export function encodeJsonDagCbor(value: unknown): Uint8Array | undefined {
  const w = new ByteWriter();
  if (!writeJson(w, value, 0)) return undefined;
  return new Uint8Array(w.buf.buffer, w.buf.byteOffset, w.len);
}

/** CIDv1 (DAG-CBOR, SHA-256) of `value`, base32 as the SDK prints it. */
export function computeCidSync(value: unknown): string {
  return cidV1String(dagCbor.code, sha256(encodeDagCbor(value)));
}

const BASE32_CODES = Buffer.from('abcdefghijklmnopqrstuvwxyz234567', 'latin1');

/**
 * A CIDv1 with a SHA-256 multihash, as multiformats prints it (multibase 'b': RFC 4648 base32,
 * lower case, no padding), written directly (test/unit/dwn-cid.test.ts checks it against
 * multiformats). `codec` is one varint byte (DAG-CBOR 0x71, raw 0x55).
 */
export function cidV1String(codec: number, digest: Uint8Array): string {
  if (codec >= 0x80 || digest.length !== 32) return CID.createV1(codec, createDigest(SHA2_256, digest)).toString();
  const bytes = new Uint8Array(36);
  bytes[0] = 1;
  bytes[1] = codec;
  bytes[2] = SHA2_256;
  bytes[3] = 32;
  bytes.set(digest, 4);
  // the characters go into one buffer (a string built by `+=` is a chain of 58 pieces: every
  // event's signature check computes a few of these)
  const out = Buffer.allocUnsafe(1 + Math.ceil((36 * 8) / 5));
  let n = 0;
  out[n++] = 0x62; // 'b'
  let bits = 0;
  let acc = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[n++] = BASE32_CODES[(acc >>> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out[n++] = BASE32_CODES[(acc << (5 - bits)) & 31]!;
  return out.toString('latin1', 0, n);
}

/** `Cid.computeCid` of dwn-sdk-js: CIDv1 (DAG-CBOR, SHA-256) of `value`. */
export async function computeCid(value: unknown): Promise<string> {
  return computeCidSync(value);
}

/** CID of record data as the SDK's `Cid.computeDagPbCidFromBytes` gives it (data up to 256 KiB). */
export function computeDataCidSync(data: Uint8Array): string {
  if (data.length > UNIXFS_CHUNK_SIZE) {
    throw new DwnMessageError(`record data of ${data.length} bytes is larger than one UnixFS chunk (${UNIXFS_CHUNK_SIZE} bytes), which meshd does not support`);
  }
  return cidV1String(RAW, sha256(data));
}

/** `Cid.computeDagPbCidFromBytes` of dwn-sdk-js, for data up to one chunk (256 KiB). */
export async function computeDagPbCidFromBytes(data: Uint8Array): Promise<string> {
  return computeDataCidSync(data);
}

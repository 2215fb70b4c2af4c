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

/** The DAG-CBOR encoding of `value` (throws DwnMessageError for what DAG-CBOR cannot encode). */
export function encodeDagCbor(value: unknown): Uint8Array {
  try {
    return dagCbor.encode(value);
  } catch (cause) {
    throw new DwnMessageError(`cannot encode as DAG-CBOR: ${(cause as Error).message}`, { cause });
  }
}

/** CIDv1 (DAG-CBOR, SHA-256) of `value`, base32 as the SDK prints it. */
export function computeCidSync(value: unknown): string {
  const bytes = encodeDagCbor(value);
  return CID.createV1(dagCbor.code, createDigest(SHA2_256, sha256(bytes))).toString();
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
  return CID.createV1(RAW, createDigest(SHA2_256, sha256(data))).toString();
}

/** `Cid.computeDagPbCidFromBytes` of dwn-sdk-js, for data up to one chunk (256 KiB). */
export async function computeDagPbCidFromBytes(data: Uint8Array): Promise<string> {
  return computeDataCidSync(data);
}

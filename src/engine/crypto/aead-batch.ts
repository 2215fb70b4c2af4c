/**
 * ChaCha20-Poly1305 over whole batches of WireGuard transport packets, in place.
 *
 * WireGuard's transport AEAD: nonce = 4 zero bytes ‖ 64-bit little-endian counter, empty
 * additional data, 16-byte tag. Packet i is the byte range buf[offsets[i], offsets[i]+lengths[i]).
 * - seal: encrypts the range in place and writes the tag right after it (the 16 bytes after the
 *   packet must be free — PacketBatch's TAILROOM), then lengths[i] += 16 and ok[i] = 1.
 * - open: the range is ciphertext ‖ tag; on success the plaintext is left in place,
 *   lengths[i] -= 16 and ok[i] = 1. On failure ok[i] = 0, lengths[i] is unchanged and the
 *   packet's bytes are unspecified: drop it.
 * Keys: `keys` holds 32-byte keys back to back; packet i uses key keyIndex[i] (or key 0 for all
 * when keyIndex is null). Counters: a BigUint64Array (counter i at [i]) or a Uint32Array holding
 * (low, high) pairs (counter i at [2i], [2i+1]) — the same memory layout, so the native path reads
 * either without conversion and callers can avoid BigInt on the hot path.
 * A packet with a key index outside `keys` or without room for its tag gets ok[i] = 0.
 *
 * Two implementations with one interface: the native addon (OpenSSL's EVP_chacha20_poly1305,
 * contexts reused across packets, big batches shared between threads: crypto-threads.ts) and
 * node:crypto (createCipheriv per packet). MESHD_PURE_TS=1 selects node:crypto. Both produce
 * byte-identical output, whatever the number of threads.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { endianness } from 'node:os';
import type { NativeAddon, NativeAeadStats } from '../native/addon.js';
import { chooseNative, type ImplementationChoice } from '../native/load.js';
import { applyCryptoThreads, cryptoThreadSetting, cryptoThreadStats } from './crypto-threads.js';

export const AEAD_KEY_SIZE = 32;
export const AEAD_TAG_SIZE = 16;
export const AEAD_NONCE_SIZE = 12;

/** The packet ranges to work on; a PacketBatch is one. */
export interface PacketRanges {
  readonly buf: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  count: number;
}

export type CounterArray = BigUint64Array | Uint32Array;

export type AeadImplementation = 'native' | 'node-crypto';

/**
 * Seal or open packets start..start+count-1 (default: 0..p.count-1) in place. keyIndex, counters
 * and ok are indexed by packet index i. Returns how many succeeded.
 */
export type AeadBatchOp = (
  p: PacketRanges,
  keys: Uint8Array,
  keyIndex: Uint32Array | null,
  counters: CounterArray,
  ok: Uint8Array,
  start?: number,
  count?: number,
) => number;

/** The thread setting and counters of the implementation (node-crypto: one thread, zeros). */
export type AeadStats = NativeAeadStats;

export interface AeadBatch {
  readonly kind: AeadImplementation;
  /** Threads and parallel-batch counters (the native ones are per JavaScript environment). */
  stats(): AeadStats;
  /** Seal in place (the tag goes after each packet). Returns the number sealed. */
  readonly seal: AeadBatchOp;
  /** Open in place (the tag is stripped). Returns the number opened. */
  readonly open: AeadBatchOp;
}

/**
 * Validates one call's arguments (once per batch, never per packet) and returns how many whole
 * keys `keys` holds.
 */
function checkShape(
  p: PacketRanges,
  keys: Uint8Array,
  keyIndex: Uint32Array | null,
  counters: CounterArray,
  ok: Uint8Array,
  start: number,
  count: number,
): number {
  const end = start + count;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0) {
    throw new RangeError('start and count must be non-negative integers');
  }
  if (end > p.offsets.length || end > p.lengths.length || end > ok.length || end * 8 > counters.byteLength) {
    throw new RangeError('start/count outside the batch arrays');
  }
  if (keyIndex !== null && end > keyIndex.length) throw new RangeError('keyIndex shorter than the batch');
  if (keys.length < AEAD_KEY_SIZE) throw new RangeError('keys must hold at least one 32-byte key');
  return Math.floor(keys.length / AEAD_KEY_SIZE);
}

/** The addon's batch AEAD (OpenSSL through Node's exported symbols). */
export class NativeAeadBatch implements AeadBatch {
  readonly kind = 'native' as const;
  readonly #addon: NativeAddon;

  constructor(addon: NativeAddon) {
    this.#addon = addon;
  }

  stats(): AeadStats {
    return cryptoThreadStats(this.#addon);
  }

  seal(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start = 0,
    count = p.count - start,
  ): number {
    return this.#addon.aeadSeal(p.buf, p.offsets, p.lengths, start, count, keys, keyIndex, counters, ok);
  }

  open(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start = 0,
    count = p.count - start,
  ): number {
    return this.#addon.aeadOpen(p.buf, p.offsets, p.lengths, start, count, keys, keyIndex, counters, ok);
  }
}

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** node:crypto, one cipher object per packet: the portable path. */
export class NodeCryptoAeadBatch implements AeadBatch {
  readonly kind = 'node-crypto' as const;
  readonly #nonce = Buffer.alloc(AEAD_NONCE_SIZE);

  stats(): AeadStats {
    return cryptoThreadStats(null);
  }

  /** Fill the nonce for packet i from the counters' raw memory (host-order u64). */
  #setNonce(counterBytes: Uint8Array, i: number): Buffer {
    const n = this.#nonce;
    const o = i * 8;
    for (let b = 0; b < 8; b++) n[4 + b] = counterBytes[o + (LITTLE_ENDIAN_HOST ? b : 7 - b)]!;
    return n;
  }

  seal(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start = 0,
    count = p.count - start,
  ): number {
    return this.#run(true, p, keys, keyIndex, counters, ok, start, count);
  }

  open(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start = 0,
    count = p.count - start,
  ): number {
    return this.#run(false, p, keys, keyIndex, counters, ok, start, count);
  }

  /** The loop seal and open share: validation, key and nonce per packet, ok[] and lengths[]. */
  #run(
    sealing: boolean,
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start: number,
    count: number,
  ): number {
    const nKeys = checkShape(p, keys, keyIndex, counters, ok, start, count);
    const counterBytes = new Uint8Array(counters.buffer, counters.byteOffset, counters.byteLength);
    const buf = p.buf;
    let done = 0;
    for (let i = start; i < start + count; i++) {
      ok[i] = 0;
      const k = keyIndex === null ? 0 : keyIndex[i]!;
      const off = p.offsets[i]!;
      const len = p.lengths[i]!;
      if (k >= nKeys || !fits(sealing, off, len, buf.length)) continue;
      const key = keys.subarray(k * AEAD_KEY_SIZE, (k + 1) * AEAD_KEY_SIZE);
      const nonce = this.#setNonce(counterBytes, i);
      const newLen = sealing ? sealOne(buf, off, len, key, nonce) : openOne(buf, off, len, key, nonce);
      if (newLen < 0) continue;
      p.lengths[i] = newLen;
      ok[i] = 1;
      done++;
    }
    return done;
  }
}

/** Room for the tag after the packet (seal), or a whole tag inside the packet (open)? */
function fits(sealing: boolean, off: number, len: number, bufLength: number): boolean {
  return sealing ? off + len + AEAD_TAG_SIZE <= bufLength : len >= AEAD_TAG_SIZE && off + len <= bufLength;
}

/** Encrypts buf[off, off+len) in place and writes the tag after it; returns the sealed length. */
function sealOne(buf: Uint8Array, off: number, len: number, key: Uint8Array, nonce: Buffer): number {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  const ct = cipher.update(buf.subarray(off, off + len));
  cipher.final();
  buf.set(ct, off);
  buf.set(cipher.getAuthTag(), off + len);
  return len + AEAD_TAG_SIZE;
}

/** Opens ciphertext ‖ tag at buf[off, off+len) in place; returns the plaintext length, or -1. */
function openOne(buf: Uint8Array, off: number, len: number, key: Uint8Array, nonce: Buffer): number {
  const ctLen = len - AEAD_TAG_SIZE;
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  decipher.setAuthTag(buf.subarray(off + ctLen, off + len));
  const pt = decipher.update(buf.subarray(off, off + ctLen));
  try {
    decipher.final();
  } catch {
    return -1;
  }
  buf.set(pt, off);
  return ctLen;
}

export type AeadBatchOptions = ImplementationChoice<'node-crypto'>;

/**
 * Pick the AEAD implementation; the native one gets its thread setting from the environment
 * (MESHD_CRYPTO_THREADS, MESHD_CRYPTO_PARALLEL_BYTES; a malformed value throws
 * E_CONFIG_INVALID). Asking for 'native' when the addon is unavailable throws E_NATIVE.
 */
export function createAeadBatch(options: AeadBatchOptions = {}): AeadBatch {
  const addon = chooseNative(options, 'node-crypto', 'AEAD');
  if (addon === null) return new NodeCryptoAeadBatch();
  applyCryptoThreads(addon, cryptoThreadSetting(options.env ?? process.env));
  return new NativeAeadBatch(addon);
}

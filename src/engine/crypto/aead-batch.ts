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
 * contexts reused across packets) and node:crypto (createCipheriv per packet). MESHD_PURE_TS=1
 * selects node:crypto. Both produce byte-identical output.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { endianness } from 'node:os';
import { MeshdError } from '../../errors.js';
import type { NativeAddon } from '../native/addon.js';
import { pureTsRequested, tryLoadNative } from '../native/load.js';

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

export interface AeadBatch {
  readonly kind: AeadImplementation;
  /**
   * Seal packets start..start+count-1 (default: 0..p.count-1) in place. keyIndex, counters and ok
   * are indexed by packet index i. Returns the number sealed.
   */
  seal(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start?: number,
    count?: number,
  ): number;
  /** Open packets start..start+count-1 in place; same conventions. Returns the number opened. */
  open(
    p: PacketRanges,
    keys: Uint8Array,
    keyIndex: Uint32Array | null,
    counters: CounterArray,
    ok: Uint8Array,
    start?: number,
    count?: number,
  ): number;
}

function checkShape(
  p: PacketRanges,
  keys: Uint8Array,
  keyIndex: Uint32Array | null,
  counters: CounterArray,
  ok: Uint8Array,
  start: number,
  count: number,
): void {
  const end = start + count;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0) {
    throw new RangeError('start and count must be non-negative integers');
  }
  if (end > p.offsets.length || end > p.lengths.length || end > ok.length || end * 8 > counters.byteLength) {
    throw new RangeError('start/count outside the batch arrays');
  }
  if (keyIndex !== null && end > keyIndex.length) throw new RangeError('keyIndex shorter than the batch');
  if (keys.length < AEAD_KEY_SIZE) throw new RangeError('keys must hold at least one 32-byte key');
}

/** The addon's batch AEAD (OpenSSL through Node's exported symbols). */
export class NativeAeadBatch implements AeadBatch {
  readonly kind = 'native' as const;
  readonly #addon: NativeAddon;

  constructor(addon: NativeAddon) {
    this.#addon = addon;
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
    checkShape(p, keys, keyIndex, counters, ok, start, count);
    const counterBytes = new Uint8Array(counters.buffer, counters.byteOffset, counters.byteLength);
    const nKeys = Math.floor(keys.length / AEAD_KEY_SIZE);
    const buf = p.buf;
    let sealed = 0;
    for (let i = start; i < start + count; i++) {
      ok[i] = 0;
      const k = keyIndex === null ? 0 : keyIndex[i]!;
      const off = p.offsets[i]!;
      const len = p.lengths[i]!;
      if (k >= nKeys || off + len + AEAD_TAG_SIZE > buf.length) continue;
      const key = keys.subarray(k * AEAD_KEY_SIZE, (k + 1) * AEAD_KEY_SIZE);
      const cipher = createCipheriv('chacha20-poly1305', key, this.#setNonce(counterBytes, i), {
        authTagLength: AEAD_TAG_SIZE,
      });
      const ct = cipher.update(buf.subarray(off, off + len));
      cipher.final();
      buf.set(ct, off);
      buf.set(cipher.getAuthTag(), off + len);
      p.lengths[i] = len + AEAD_TAG_SIZE;
      ok[i] = 1;
      sealed++;
    }
    return sealed;
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
    checkShape(p, keys, keyIndex, counters, ok, start, count);
    const counterBytes = new Uint8Array(counters.buffer, counters.byteOffset, counters.byteLength);
    const nKeys = Math.floor(keys.length / AEAD_KEY_SIZE);
    const buf = p.buf;
    let opened = 0;
    for (let i = start; i < start + count; i++) {
      ok[i] = 0;
      const k = keyIndex === null ? 0 : keyIndex[i]!;
      const off = p.offsets[i]!;
      const len = p.lengths[i]!;
      if (k >= nKeys || len < AEAD_TAG_SIZE || off + len > buf.length) continue;
      const ctLen = len - AEAD_TAG_SIZE;
      const key = keys.subarray(k * AEAD_KEY_SIZE, (k + 1) * AEAD_KEY_SIZE);
      const decipher = createDecipheriv('chacha20-poly1305', key, this.#setNonce(counterBytes, i), {
        authTagLength: AEAD_TAG_SIZE,
      });
      decipher.setAuthTag(buf.subarray(off + ctLen, off + len));
      const pt = decipher.update(buf.subarray(off, off + ctLen));
      try {
        decipher.final();
      } catch {
        continue;
      }
      buf.set(pt, off);
      p.lengths[i] = ctLen;
      ok[i] = 1;
      opened++;
    }
    return opened;
  }
}

export interface AeadBatchOptions {
  /** 'auto' (default): native unless MESHD_PURE_TS=1 or the addon is unavailable. */
  implementation?: 'auto' | AeadImplementation;
  /** An already loaded addon (or null for none); default: load it. */
  addon?: NativeAddon | null;
  env?: NodeJS.ProcessEnv;
}

/** Pick the AEAD implementation. Asking for 'native' when the addon is unavailable throws E_NATIVE. */
export function createAeadBatch(options: AeadBatchOptions = {}): AeadBatch {
  const env = options.env ?? process.env;
  const want = options.implementation ?? 'auto';
  if (want === 'node-crypto' || (want === 'auto' && pureTsRequested(env))) return new NodeCryptoAeadBatch();
  let addon: NativeAddon | null;
  let reason = 'no addon given';
  if (options.addon !== undefined) addon = options.addon;
  else {
    const loaded = tryLoadNative(env);
    addon = loaded.addon;
    if (loaded.addon === null) reason = loaded.reason;
  }
  if (addon !== null) return new NativeAeadBatch(addon);
  if (want === 'native') {
    throw new MeshdError('E_NATIVE', `native AEAD unavailable: ${reason}`, {
      hint: 'build it with `npx node-gyp rebuild --directory=native`, or set MESHD_PURE_TS=1',
    });
  }
  return new NodeCryptoAeadBatch();
}

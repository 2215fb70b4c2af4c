/**
 * How many threads seal and open one batch of transport packets in the native addon, and from
 * what batch size on. The addon holds one setting per JavaScript environment (a process's main
 * thread, or a worker thread); sharing a batch costs a wake-up of the workers and a join, so it
 * pays only for batches of tens of KiB and only where a core is free for it.
 *
 * MESHD_CRYPTO_THREADS: threads per batch, the caller's included (0 or 1: off). Default: see
 * defaultCryptoThreads. MESHD_CRYPTO_PARALLEL_BYTES: the smallest batch shared (default 48 KiB).
 * MESHD_AEAD_EVP=1: seal/open through OpenSSL's EVP interface even where the addon can call the
 * ChaCha20 and Poly1305 primitives directly (the default there: same bytes, less work per packet).
 */
import { availableParallelism } from 'node:os';
import { MeshdError } from '../../errors.js';
import type { NativeAddon, NativeAeadStats } from '../native/addon.js';

export const MAX_CRYPTO_THREADS = 64;
export const DEFAULT_PARALLEL_MIN_BYTES = 48 * 1024;

export interface CryptoThreadSetting {
  /** Threads per batch, the caller's included; 1: off. */
  threads: number;
  /** Batches of fewer bytes stay on the caller's thread. */
  minBytes: number;
  /** Use the cipher primitives without EVP where the addon has them. */
  direct: boolean;
}

/**
 * The default for a machine with `cores` CPUs. Off below 4: on 2 cores the other work of a busy
 * tunnel (the kernel's TCP and UDP, the TUN, the peer's own process on a one-machine setup)
 * already fills the second core; there, with both ends and iperf3 on one 2-core machine, two
 * threads cost 0.63–0.66 CPU s per Gbit against 0.59–0.61 on one, with no steady throughput
 * gain. From 4 cores on, half of them, at most 4: crypto is about 40 % of meshd's CPU time, so
 * more threads than that wait on the rest of the batch's work.
 */
export function defaultCryptoThreads(cores: number = availableParallelism()): number {
  if (cores < 4) return 1;
  return Math.min(4, Math.floor(cores / 2));
}

function parseCount(env: NodeJS.ProcessEnv, name: string, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new MeshdError('E_CONFIG_INVALID', `${name}=${raw} is not a whole number from 0 to ${max}`, {
      hint: `unset ${name} for the default, or set it to a number such as ${name === 'MESHD_CRYPTO_THREADS' ? '2' : String(DEFAULT_PARALLEL_MIN_BYTES)}`,
    });
  }
  return n;
}

/** The setting asked for by the environment; throws E_CONFIG_INVALID for a malformed value. */
export function cryptoThreadSetting(env: NodeJS.ProcessEnv = process.env, cores?: number): CryptoThreadSetting {
  const threads = parseCount(env, 'MESHD_CRYPTO_THREADS', MAX_CRYPTO_THREADS) ?? defaultCryptoThreads(cores);
  const minBytes = parseCount(env, 'MESHD_CRYPTO_PARALLEL_BYTES', 0x7fffffff) ?? DEFAULT_PARALLEL_MIN_BYTES;
  return { threads: Math.max(1, threads), minBytes, direct: env.MESHD_AEAD_EVP !== '1' };
}

/** Apply a setting to the addon; false when the addon predates parallel crypto (it stays serial). */
export function applyCryptoThreads(addon: NativeAddon, setting: CryptoThreadSetting): boolean {
  addon.aeadUseDirect?.(setting.direct);
  if (addon.aeadThreads === undefined) return false;
  addon.aeadThreads(setting.threads, setting.minBytes);
  return true;
}

/** The addon's thread setting and counters; all zero (threads 1) for an addon without them. */
export function cryptoThreadStats(addon: NativeAddon | null): NativeAeadStats {
  const s = addon?.aeadStats?.();
  return s ?? { threads: 1, workers: 0, minBytes: 0, parallelBatches: 0, parallelSlices: 0, parallelPackets: 0, serialBatches: 0, direct: 0 };
}

/** Deterministic bytes from a seed (xorshift32): fast-check shrinks seeds, not megabytes of data. */
export function bytesFromSeed(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

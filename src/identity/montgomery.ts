/**
 * The birational map from an Ed25519 public key to its X25519 (Montgomery) public key,
 * u = (1 + y) / (1 − y) mod p, with the point decoded and checked as RFC 8032 §5.1.3 says
 * (y < p, x² = (y² − 1) / (d·y² + 1) has a root, no x = 0 with the sign bit set). BigInt
 * arithmetic, a few hundred multiplications a key: the daemon converts each peer's key once,
 * and loading a general curve library for it cost more memory than the rest of the identity code.
 */

const P = 2n ** 255n - 19n;
/** d = −121665 / 121666 mod p. */
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
/** √−1 mod p = 2^((p − 1) / 4). */
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;

const mod = (a: bigint): bigint => {
  const r = a % P;
  return r >= 0n ? r : r + P;
};

function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  while (e > 0n) {
    if (e & 1n) r = (r * x) % P;
    x = (x * x) % P;
    e >>= 1n;
  }
  return r;
}

const inv = (a: bigint): bigint => pow(a, P - 2n);

/** The X25519 public key (32 bytes, little-endian u) of a 32-byte Ed25519 public key; throws RangeError for a non-point. */
export function ed25519PublicToX25519(edPublic: Uint8Array): Uint8Array {
  if (edPublic.length !== 32) throw new RangeError('Ed25519 public key must be 32 bytes');
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? edPublic[i]! & 0x7f : edPublic[i]!);
  const signBit = (edPublic[31]! & 0x80) !== 0;
  if (y >= P) throw new RangeError('bad point: y is not below p');
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  // candidate root x = u·v³·(u·v⁷)^((p − 5) / 8); then v·x² is u (a root), −u (times √−1) or neither
  const v3 = (v * v * v) % P;
  let x = (u * v3 * pow(u * v3 * v3 * v, (P - 5n) / 8n)) % P;
  const vx2 = (v * x * x) % P;
  if (vx2 === u) {
    /* x is a root */
  } else if (vx2 === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else {
    throw new RangeError('bad point: invalid y coordinate');
  }
  if (x === 0n && signBit) throw new RangeError('bad point: x = 0 with the sign bit set');
  const den = mod(1n - y);
  if (den === 0n) throw new RangeError('bad point: the identity has no Montgomery form');
  let m = ((1n + y) * inv(den)) % P;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(m & 0xffn);
    m >>= 8n;
  }
  return out;
}

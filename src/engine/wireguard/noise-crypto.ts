/**
 * The primitives of the WireGuard paper, section 5.4: HASH, MAC, HMAC, KDF1..3 (HKDF over
 * HMAC-BLAKE2s), DH (X25519), AEAD (ChaCha20-Poly1305 with a 64-bit little-endian counter
 * nonce), XAEAD (XChaCha20-Poly1305) and TAI64N. Only the handshake uses these (it may
 * allocate); transport data goes through the batch AEAD.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { equalBytes } from '../../util/bytes.js';

export const KEY_SIZE = 32;

const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** HASH(a ‖ b ‖ …) = BLAKE2s-256. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, input) = keyed BLAKE2s-128. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: 16 });
}

/** HMAC(key, input) = HMAC-BLAKE2s-256. */
export function hmacBlake2s(key: Uint8Array, input: Uint8Array): Uint8Array {
  return hmac(blake2s, key, input);
}

const ONE = Uint8Array.of(1);

/** KDF_n(key, input): τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i−1) ‖ i). */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const t0 = hmacBlake2s(key, input);
  const out: Uint8Array[] = [];
  let prev = hmacBlake2s(t0, ONE);
  out.push(prev);
  for (let i = 2; i <= n; i++) {
    const buf = new Uint8Array(prev.length + 1);
    buf.set(prev);
    buf[prev.length] = i;
    prev = hmacBlake2s(t0, buf);
    out.push(prev);
  }
  return out;
}

export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  return kdf(1, key, input)[0]!;
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const r = kdf(2, key, input);
  return [r[0]!, r[1]!];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const r = kdf(3, key, input);
  return [r[0]!, r[1]!, r[2]!];
}

/** An X25519 private key as node:crypto wants it. Clamping is done by X25519 itself. */
export function privateKeyObject(priv: Uint8Array): KeyObject {
  if (priv.length !== KEY_SIZE) throw new RangeError('X25519 private key must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(pub: Uint8Array): KeyObject {
  if (pub.length !== KEY_SIZE) throw new RangeError('X25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function publicKeyOf(priv: KeyObject): Uint8Array {
  const der = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - KEY_SIZE));
}

/** Clamp 32 random bytes into an X25519 private key (RFC 7748 section 5). */
export function clampPrivateKey(raw: Uint8Array): Uint8Array {
  const k = new Uint8Array(raw.subarray(0, KEY_SIZE));
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/**
 * DH(private, public) = X25519. Returns null when the result is all zeros (a low-order point),
 * which WireGuard rejects.
 */
export function dh(priv: KeyObject, pub: Uint8Array): Uint8Array | null {
  let out: Buffer;
  try {
    out = diffieHellman({ privateKey: priv, publicKey: publicKeyObject(pub) });
  } catch {
    return null;
  }
  let acc = 0;
  for (let i = 0; i < out.length; i++) acc |= out[i]!;
  return acc === 0 ? null : new Uint8Array(out);
}

/** 96-bit nonce: 32 zero bits then the 64-bit little-endian counter. */
function nonce(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(counter >>> 0, 4);
  n.writeUInt32LE(Math.floor(counter / 2 ** 32), 8);
  return n;
}

/** AEAD(key, counter, plaintext, aad) → ciphertext ‖ tag. */
export function aeadSeal(key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const c = createCipheriv('chacha20-poly1305', key, nonce(counter), { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  const out = new Uint8Array(body.length + 16);
  out.set(body);
  out.set(c.getAuthTag(), body.length);
  return out;
}

/** Open ciphertext ‖ tag; null when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: number, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (sealed.length < 16) return null;
  const ctLen = sealed.length - 16;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce(counter), { authTagLength: 16 });
    d.setAAD(aad, { plaintextLength: ctLen });
    d.setAuthTag(sealed.subarray(ctLen));
    const body = d.update(sealed.subarray(0, ctLen));
    d.final();
    return new Uint8Array(body);
  } catch {
    return null;
  }
}

/** XAEAD(key, 24-byte nonce, plaintext, aad) → ciphertext ‖ tag. */
export function xaeadSeal(key: Uint8Array, nonce24: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce24, aad).encrypt(plaintext);
}

export function xaeadOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce24, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

/** TAI64 label of the Unix epoch: 2^62 + 10 (the TAI−UTC offset the format fixed in 1972). */
const TAI64_BASE = 0x400000000000000an;
/** Nanoseconds are rounded down to 2^24 ns (≈ 16.8 ms), as wireguard-go does, so timestamps leak less. */
const WHITENER_MASK = 0x1000000 - 1;

/** 12-byte TAI64N timestamp for a wall-clock time given in nanoseconds since the Unix epoch. */
export function tai64n(unixNanos: bigint): Uint8Array {
  const secs = unixNanos / 1_000_000_000n;
  const nanos = Number(unixNanos % 1_000_000_000n) & ~WHITENER_MASK;
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, TAI64_BASE + secs, false);
  v.setUint32(8, nanos >>> 0, false);
  return out;
}

/** Lexicographic comparison of equal-length byte strings (TAI64N compares this way). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Constant-time equality for secrets and MACs. */
export { equalBytes };

export function isZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]!;
  return acc === 0;
}

/**
 * NaCl `crypto_box` (Curve25519 + XSalsa20-Poly1305), as used by DERP login frames and by disco
 * messages. The shared key is HSalsa20(X25519(myPrivate, theirPublic), 0¹⁶) — NaCl's
 * `crypto_box_beforenm` — and the box itself is `crypto_secretbox` under that key: a 16-byte
 * Poly1305 tag followed by the ciphertext (libsodium's "easy" layout, which is what Tailscale puts
 * on the wire after its 24-byte nonce).
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { hsalsa, xsalsa20poly1305 } from '@noble/ciphers/salsa.js';

export const BOX_KEY_LEN = 32;
export const BOX_NONCE_LEN = 24;
export const BOX_TAG_LEN = 16;

/** "expand 32-byte k" — the Salsa20 constant HSalsa20 uses for 256-bit keys. */
const SIGMA = new TextEncoder().encode('expand 32-byte k');

export interface BoxKeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

// X25519 through node:crypto (OpenSSL): raw keys go in and out as PKCS#8 / SPKI DER with these prefixes.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyObject(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function rawPublic(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - BOX_KEY_LEN));
}

export function generateBoxKeyPair(): BoxKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return { privateKey: new Uint8Array(der.subarray(der.length - BOX_KEY_LEN)), publicKey: rawPublic(publicKey) };
}

export function boxPublicKey(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== BOX_KEY_LEN) throw new RangeError('X25519 private key must be 32 bytes');
  return rawPublic(createPublicKey(privateKeyObject(privateKey)));
}

/** A word-aligned copy of b viewed as native-order 32-bit words (what noble's hsalsa takes). */
function words(b: Uint8Array): Uint32Array {
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new Uint32Array(copy.buffer, 0, b.length / 4);
}

/** HSalsa20(key, 16-byte input) → 32-byte subkey. */
export function hsalsa20(key: Uint8Array, input16: Uint8Array): Uint8Array {
  if (key.length !== 32 || input16.length !== 16) throw new RangeError('hsalsa20 needs a 32-byte key and 16-byte input');
  const out = new Uint8Array(32);
  hsalsa(words(SIGMA), words(key), words(input16), new Uint32Array(out.buffer));
  return out;
}

/**
 * `crypto_box_beforenm`: the precomputed shared key for a (private, peer public) pair, or null
 * when the peer key is malformed or of low order (the X25519 result would be all zeros).
 */
export function boxBeforeNm(myPrivate: Uint8Array, theirPublic: Uint8Array): Uint8Array | null {
  if (myPrivate.length !== BOX_KEY_LEN || theirPublic.length !== BOX_KEY_LEN) return null;
  let shared: Uint8Array;
  try {
    // OpenSSL refuses a low-order peer key (an all-zero result)
    shared = new Uint8Array(diffieHellman({ privateKey: privateKeyObject(myPrivate), publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, theirPublic]), format: 'der', type: 'spki' }) }));
  } catch {
    return null;
  }
  return hsalsa20(shared, new Uint8Array(16));
}

/** `crypto_secretbox` with a precomputed key: tag ‖ ciphertext. */
export function secretboxSeal(sharedKey: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  if (nonce.length !== BOX_NONCE_LEN) throw new RangeError('nonce must be 24 bytes');
  return xsalsa20poly1305(sharedKey, nonce).encrypt(plaintext);
}

/** Opens tag ‖ ciphertext; null when the tag does not verify or the input is too short. */
export function secretboxOpen(sharedKey: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array | null {
  if (nonce.length !== BOX_NONCE_LEN || box.length < BOX_TAG_LEN || sharedKey.length !== BOX_KEY_LEN) return null;
  try {
    return xsalsa20poly1305(sharedKey, nonce).decrypt(box);
  } catch {
    return null;
  }
}

/** `crypto_box`: seal plaintext from myPrivate to theirPublic under nonce; tag ‖ ciphertext. */
export function boxSeal(
  plaintext: Uint8Array,
  nonce: Uint8Array,
  theirPublic: Uint8Array,
  myPrivate: Uint8Array,
): Uint8Array | null {
  const k = boxBeforeNm(myPrivate, theirPublic);
  return k === null ? null : secretboxSeal(k, nonce, plaintext);
}

/** `crypto_box_open`; null when the box does not open. */
export function boxOpen(
  box: Uint8Array,
  nonce: Uint8Array,
  theirPublic: Uint8Array,
  myPrivate: Uint8Array,
): Uint8Array | null {
  const k = boxBeforeNm(myPrivate, theirPublic);
  return k === null ? null : secretboxOpen(k, nonce, box);
}

export function randomNonce(): Uint8Array {
  return new Uint8Array(randomBytes(BOX_NONCE_LEN));
}

/** Tailscale's `SealTo` layout: a fresh random 24-byte nonce ‖ tag ‖ ciphertext. */
export function sealWithNonce(sharedKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const nonce = randomNonce();
  const box = secretboxSeal(sharedKey, nonce, plaintext);
  const out = new Uint8Array(BOX_NONCE_LEN + box.length);
  out.set(nonce, 0);
  out.set(box, BOX_NONCE_LEN);
  return out;
}

/** Opens nonce ‖ tag ‖ ciphertext; null when too short or the tag does not verify. */
export function openWithNonce(sharedKey: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  if (sealed.length < BOX_NONCE_LEN + BOX_TAG_LEN) return null;
  return secretboxOpen(sharedKey, sealed.subarray(0, BOX_NONCE_LEN), sealed.subarray(BOX_NONCE_LEN));
}

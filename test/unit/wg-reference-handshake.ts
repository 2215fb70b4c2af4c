/**
 * The WireGuard handshake written out straight from the paper (section 5.4), one line per
 * equation, with other primitives than the implementation uses (noble's X25519 and
 * ChaCha20-Poly1305 instead of node:crypto). The known-answer test checks the implementation
 * and this derivation against the vectors in test/vectors/wg-handshake.json; the lab test checks
 * the implementation against wireguard-go.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';

const te = new TextEncoder();
const cat = (...a: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(a.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of a) {
    out.set(x, o);
    o += x.length;
  }
  return out;
};
const HASH = (x: Uint8Array): Uint8Array => blake2s(x);
const MAC = (key: Uint8Array, x: Uint8Array): Uint8Array => blake2s(x, { key, dkLen: 16 });
const HMAC = (key: Uint8Array, x: Uint8Array): Uint8Array => hmac(blake2s, key, x);
function KDF(n: number, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const t0 = HMAC(key, input);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    prev = HMAC(t0, cat(prev, Uint8Array.of(i)));
    out.push(prev);
  }
  return out;
}
const DH = (priv: Uint8Array, pub: Uint8Array): Uint8Array => x25519.getSharedSecret(priv, pub);
const DH_PUBKEY = (priv: Uint8Array): Uint8Array => x25519.getPublicKey(priv);
const nonce = (counter: number): Uint8Array => {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(4, counter, true);
  return n;
};
const AEAD = (key: Uint8Array, counter: number, pt: Uint8Array, aad: Uint8Array): Uint8Array => chacha20poly1305(key, nonce(counter), aad).encrypt(pt);
const u32le = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
};

export interface HandshakeInputs {
  initiatorStatic: Uint8Array;
  responderStatic: Uint8Array;
  initiatorEphemeral: Uint8Array;
  responderEphemeral: Uint8Array;
  presharedKey: Uint8Array;
  timestamp: Uint8Array;
  initiatorIndex: number;
  responderIndex: number;
  /** For the cookie reply: the responder's cookie secret, nonce, and the initiator's source bytes. */
  cookieSecret: Uint8Array;
  cookieNonce: Uint8Array;
  source: Uint8Array;
  /** A transport payload sent by the initiator with counter 0 (already padded). */
  payload: Uint8Array;
}

export interface HandshakeOutputs {
  initiation: Uint8Array;
  response: Uint8Array;
  cookieReply: Uint8Array;
  /** The initiation again, with mac2 made from the cookie. */
  initiationWithMac2: Uint8Array;
  initiatorSendKey: Uint8Array;
  initiatorReceiveKey: Uint8Array;
  transport: Uint8Array;
}

export function referenceHandshake(x: HandshakeInputs): HandshakeOutputs {
  const SpubI = DH_PUBKEY(x.initiatorStatic);
  const SpubR = DH_PUBKEY(x.responderStatic);
  const EpubI = DH_PUBKEY(x.initiatorEphemeral);
  const EpubR = DH_PUBKEY(x.responderEphemeral);

  // message 1
  let C = HASH(te.encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  let H = HASH(cat(C, te.encode('WireGuard v1 zx2c4 Jason@zx2c4.com')));
  H = HASH(cat(H, SpubR));
  C = KDF(1, C, EpubI)[0]!;
  H = HASH(cat(H, EpubI));
  let k: Uint8Array;
  [C, k] = KDF(2, C, DH(x.initiatorEphemeral, SpubR)) as [Uint8Array, Uint8Array];
  const encStatic = AEAD(k, 0, SpubI, H);
  H = HASH(cat(H, encStatic));
  [C, k] = KDF(2, C, DH(x.initiatorStatic, SpubR)) as [Uint8Array, Uint8Array];
  const encTimestamp = AEAD(k, 0, x.timestamp, H);
  H = HASH(cat(H, encTimestamp));
  const initA = cat(Uint8Array.of(1, 0, 0, 0), u32le(x.initiatorIndex), EpubI, encStatic, encTimestamp);
  const mac1I = MAC(HASH(cat(te.encode('mac1----'), SpubR)), initA);
  const initiation = cat(initA, mac1I, new Uint8Array(16));

  // cookie reply from the responder, and the initiation resent with mac2
  const cookie = MAC(x.cookieSecret, x.source);
  const encCookie = xchacha20poly1305(HASH(cat(te.encode('cookie--'), SpubR)), x.cookieNonce, mac1I).encrypt(cookie);
  const cookieReply = cat(Uint8Array.of(3, 0, 0, 0), u32le(x.initiatorIndex), x.cookieNonce, encCookie);
  const initiationWithMac2 = cat(initA, mac1I, MAC(cookie, cat(initA, mac1I)));

  // message 2
  C = KDF(1, C, EpubR)[0]!;
  H = HASH(cat(H, EpubR));
  C = KDF(1, C, DH(x.responderEphemeral, EpubI))[0]!;
  C = KDF(1, C, DH(x.responderEphemeral, SpubI))[0]!;
  const [C2, tau, k2] = KDF(3, C, x.presharedKey) as [Uint8Array, Uint8Array, Uint8Array];
  C = C2;
  H = HASH(cat(H, tau));
  const encNothing = AEAD(k2, 0, new Uint8Array(0), H);
  // (H = HASH(H ‖ msg.empty) would follow; the transport keys need only C)
  const respA = cat(Uint8Array.of(2, 0, 0, 0), u32le(x.responderIndex), u32le(x.initiatorIndex), EpubR, encNothing);
  const mac1R = MAC(HASH(cat(te.encode('mac1----'), SpubI)), respA);
  const response = cat(respA, mac1R, new Uint8Array(16));

  // transport keys and one data message from the initiator
  const [Tsend, Trecv] = KDF(2, C, new Uint8Array(0)) as [Uint8Array, Uint8Array];
  const transport = cat(Uint8Array.of(4, 0, 0, 0), u32le(x.responderIndex), new Uint8Array(8), AEAD(Tsend, 0, x.payload, new Uint8Array(0)));
  return { initiation, response, cookieReply, initiationWithMac2, initiatorSendKey: Tsend, initiatorReceiveKey: Trecv, transport };
}

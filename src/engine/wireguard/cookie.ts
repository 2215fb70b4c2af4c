/**
 * mac1/mac2 and cookies (paper section 5.4.4 and 5.4.7).
 *
 * - CookieChecker: our side as a receiver of handshake messages. Verifies mac1 (keyed with our
 *   static public key), verifies mac2 against the cookie the sender's address earns, and makes
 *   cookie replies. The secret behind cookies is random and rotates every COOKIE_REFRESH_TIME.
 * - CookieGenerator: our side as a sender to one peer. Adds mac1 (keyed with the peer's static
 *   public key) and mac2 when we hold a fresh cookie from that peer, and consumes cookie replies.
 */
import { LABEL_COOKIE, LABEL_MAC1, MESSAGE_INITIATION } from './constants.js';
import { COOKIE_REPLY, INITIATION, RESPONSE } from './messages.js';
import { equalBytes, hash, mac, xaeadOpen, xaeadSeal } from './noise-crypto.js';

const enc = new TextEncoder();
const LABEL_MAC1_BYTES = enc.encode(LABEL_MAC1);
const LABEL_COOKIE_BYTES = enc.encode(LABEL_COOKIE);

export function mac1Key(staticPublic: Uint8Array): Uint8Array {
  return hash(LABEL_MAC1_BYTES, staticPublic);
}

export function cookieKey(staticPublic: Uint8Array): Uint8Array {
  return hash(LABEL_COOKIE_BYTES, staticPublic);
}

/** Offsets of mac1 and mac2 in a handshake message (initiation or response). */
function macOffsets(msg: Uint8Array): { mac1: number; mac2: number } {
  return msg[0] === MESSAGE_INITIATION
    ? { mac1: INITIATION.mac1, mac2: INITIATION.mac2 }
    : { mac1: RESPONSE.mac1, mac2: RESPONSE.mac2 };
}

export type Rng = (n: number) => Uint8Array;
export type Now = () => number;

export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private secret: Uint8Array | null = null;
  private secretSet = 0;

  constructor(
    ourPublic: Uint8Array,
    private readonly rng: Rng,
    private readonly now: Now,
    private readonly refreshTime: number,
  ) {
    this.mac1Key = mac1Key(ourPublic);
    this.cookieKey = cookieKey(ourPublic);
  }

  /** mac1 = MAC(HASH(LABEL_MAC1 ‖ our public), msg up to mac1). */
  checkMac1(msg: Uint8Array): boolean {
    const o = macOffsets(msg);
    const want = mac(this.mac1Key, msg.subarray(0, o.mac1));
    return equalBytes(want, msg.subarray(o.mac1, o.mac1 + 16));
  }

  /** mac2 = MAC(cookie for `source`, msg up to mac2); false when our secret has expired. */
  checkMac2(msg: Uint8Array, source: Uint8Array): boolean {
    if (this.secret === null || this.now() - this.secretSet > this.refreshTime) return false;
    const o = macOffsets(msg);
    const cookie = mac(this.secret, source);
    const want = mac(cookie, msg.subarray(0, o.mac2));
    return equalBytes(want, msg.subarray(o.mac2, o.mac2 + 16));
  }

  /**
   * A cookie reply to a handshake message `msg` from `source`: the cookie sealed with
   * XChaCha20-Poly1305 under HASH(LABEL_COOKIE ‖ our public), with msg's mac1 as associated data.
   */
  createReply(msg: Uint8Array, source: Uint8Array): { receiver: number; nonce: Uint8Array; encryptedCookie: Uint8Array } {
    const t = this.now();
    if (this.secret === null || t - this.secretSet > this.refreshTime) {
      this.secret = this.rng(32);
      this.secretSet = t;
    }
    const o = macOffsets(msg);
    const cookie = mac(this.secret, source);
    const nonce = this.rng(24);
    const encryptedCookie = xaeadSeal(this.cookieKey, nonce, cookie, msg.subarray(o.mac1, o.mac1 + 16));
    const receiver = (msg[4]! | (msg[5]! << 8) | (msg[6]! << 16) | (msg[7]! << 24)) >>> 0;
    return { receiver, nonce, encryptedCookie };
  }
}

export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | null = null;
  private cookieSet = 0;
  private lastMac1: Uint8Array | null = null;

  constructor(
    peerPublic: Uint8Array,
    private readonly now: Now,
    private readonly refreshTime: number,
  ) {
    this.mac1Key = mac1Key(peerPublic);
    this.cookieKey = cookieKey(peerPublic);
  }

  /** Fill mac1 (and mac2 when we hold a fresh cookie) of an initiation or response in place. */
  addMacs(msg: Uint8Array): void {
    const o = macOffsets(msg);
    const m1 = mac(this.mac1Key, msg.subarray(0, o.mac1));
    msg.set(m1, o.mac1);
    this.lastMac1 = m1;
    if (this.cookie !== null && this.now() - this.cookieSet < this.refreshTime) {
      msg.set(mac(this.cookie, msg.subarray(0, o.mac2)), o.mac2);
    } else {
      msg.fill(0, o.mac2, o.mac2 + 16);
    }
  }

  /** Take the cookie from a reply to our last message. False when it does not authenticate. */
  consumeReply(reply: Uint8Array): boolean {
    if (this.lastMac1 === null) return false;
    const nonce = reply.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.nonce + 24);
    const sealed = reply.subarray(COOKIE_REPLY.cookie, COOKIE_REPLY.cookie + 32);
    const cookie = xaeadOpen(this.cookieKey, nonce, sealed, this.lastMac1);
    if (cookie === null) return false;
    this.cookie = cookie;
    this.cookieSet = this.now();
    this.lastMac1 = null;
    return true;
  }

  hasFreshCookie(): boolean {
    return this.cookie !== null && this.now() - this.cookieSet < this.refreshTime;
  }
}

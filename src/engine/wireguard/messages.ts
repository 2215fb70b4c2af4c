/**
 * Wire codecs for the four WireGuard messages (paper section 5.4). All integers are
 * little-endian; the first byte is the type and the next three are zero, so the first four bytes
 * read as a little-endian u32 equal the type. Decoders validate length and header and return
 * null for anything malformed; they never throw.
 */
import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  KEEPALIVE_SIZE,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  RESPONSE_SIZE,
} from './constants.js';

/** Offsets of the fields within each message. */
export const INITIATION = { sender: 4, ephemeral: 8, static: 40, timestamp: 88, mac1: 116, mac2: 132 } as const;
export const RESPONSE = { sender: 4, receiver: 8, ephemeral: 12, empty: 44, mac1: 60, mac2: 76 } as const;
export const COOKIE_REPLY = { receiver: 4, nonce: 8, cookie: 32 } as const;
export const TRANSPORT = { receiver: 4, counter: 8, content: 16 } as const;

export interface Initiation {
  sender: number;
  ephemeral: Uint8Array; // 32
  encryptedStatic: Uint8Array; // 48
  encryptedTimestamp: Uint8Array; // 28
  mac1: Uint8Array; // 16
  mac2: Uint8Array; // 16
}

export interface Response {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array; // 32
  encryptedNothing: Uint8Array; // 16
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReply {
  receiver: number;
  nonce: Uint8Array; // 24
  encryptedCookie: Uint8Array; // 32
}

/**
 * The message type of a datagram, or 0 when it is not a well-formed WireGuard message: the
 * header must be type 1..4 followed by three zero bytes, and the length must fit the type.
 */
export function messageType(buf: Uint8Array, off: number, len: number): number {
  if (len < 4) return 0;
  const t = buf[off]!;
  if (buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return 0;
  switch (t) {
    case MESSAGE_INITIATION:
      return len === INITIATION_SIZE ? t : 0;
    case MESSAGE_RESPONSE:
      return len === RESPONSE_SIZE ? t : 0;
    case MESSAGE_COOKIE_REPLY:
      return len === COOKIE_REPLY_SIZE ? t : 0;
    case MESSAGE_TRANSPORT:
      return len >= KEEPALIVE_SIZE ? t : 0;
    default:
      return 0;
  }
}

/** A copy of b[start, end) (Buffer#slice would be a view). */
export function copyBytes(b: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(b.subarray(start, end));
  return out;
}

function u32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function putU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

function header(type: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  b[0] = type;
  return b;
}

function need(v: Uint8Array, n: number, what: string): Uint8Array {
  if (v.length !== n) throw new RangeError(`${what} must be ${n} bytes`);
  return v;
}

export function encodeInitiation(m: Initiation): Uint8Array {
  const b = header(MESSAGE_INITIATION, INITIATION_SIZE);
  putU32(b, INITIATION.sender, m.sender);
  b.set(need(m.ephemeral, 32, 'ephemeral'), INITIATION.ephemeral);
  b.set(need(m.encryptedStatic, 48, 'static'), INITIATION.static);
  b.set(need(m.encryptedTimestamp, 28, 'timestamp'), INITIATION.timestamp);
  b.set(need(m.mac1, 16, 'mac1'), INITIATION.mac1);
  b.set(need(m.mac2, 16, 'mac2'), INITIATION.mac2);
  return b;
}

export function decodeInitiation(b: Uint8Array): Initiation | null {
  if (messageType(b, 0, b.length) !== MESSAGE_INITIATION) return null;
  return {
    sender: u32(b, INITIATION.sender),
    ephemeral: copyBytes(b, INITIATION.ephemeral, INITIATION.ephemeral + 32),
    encryptedStatic: copyBytes(b, INITIATION.static, INITIATION.static + 48),
    encryptedTimestamp: copyBytes(b, INITIATION.timestamp, INITIATION.timestamp + 28),
    mac1: copyBytes(b, INITIATION.mac1, INITIATION.mac1 + 16),
    mac2: copyBytes(b, INITIATION.mac2, INITIATION.mac2 + 16),
  };
}

export function encodeResponse(m: Response): Uint8Array {
  const b = header(MESSAGE_RESPONSE, RESPONSE_SIZE);
  putU32(b, RESPONSE.sender, m.sender);
  putU32(b, RESPONSE.receiver, m.receiver);
  b.set(need(m.ephemeral, 32, 'ephemeral'), RESPONSE.ephemeral);
  b.set(need(m.encryptedNothing, 16, 'empty'), RESPONSE.empty);
  b.set(need(m.mac1, 16, 'mac1'), RESPONSE.mac1);
  b.set(need(m.mac2, 16, 'mac2'), RESPONSE.mac2);
  return b;
}

export function decodeResponse(b: Uint8Array): Response | null {
  if (messageType(b, 0, b.length) !== MESSAGE_RESPONSE) return null;
  return {
    sender: u32(b, RESPONSE.sender),
    receiver: u32(b, RESPONSE.receiver),
    ephemeral: copyBytes(b, RESPONSE.ephemeral, RESPONSE.ephemeral + 32),
    encryptedNothing: copyBytes(b, RESPONSE.empty, RESPONSE.empty + 16),
    mac1: copyBytes(b, RESPONSE.mac1, RESPONSE.mac1 + 16),
    mac2: copyBytes(b, RESPONSE.mac2, RESPONSE.mac2 + 16),
  };
}

export function encodeCookieReply(m: CookieReply): Uint8Array {
  const b = header(MESSAGE_COOKIE_REPLY, COOKIE_REPLY_SIZE);
  putU32(b, COOKIE_REPLY.receiver, m.receiver);
  b.set(need(m.nonce, 24, 'nonce'), COOKIE_REPLY.nonce);
  b.set(need(m.encryptedCookie, 32, 'cookie'), COOKIE_REPLY.cookie);
  return b;
}

export function decodeCookieReply(b: Uint8Array): CookieReply | null {
  if (messageType(b, 0, b.length) !== MESSAGE_COOKIE_REPLY) return null;
  return {
    receiver: u32(b, COOKIE_REPLY.receiver),
    nonce: copyBytes(b, COOKIE_REPLY.nonce, COOKIE_REPLY.nonce + 24),
    encryptedCookie: copyBytes(b, COOKIE_REPLY.cookie, COOKIE_REPLY.cookie + 32),
  };
}

/** Write a transport header at buf[off..off+16): type 4, receiver index, 64-bit counter. */
export function writeTransportHeader(buf: Uint8Array, off: number, receiver: number, counter: number): void {
  buf[off] = MESSAGE_TRANSPORT;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  putU32(buf, off + TRANSPORT.receiver, receiver);
  putU32(buf, off + TRANSPORT.counter, counter >>> 0);
  putU32(buf, off + TRANSPORT.counter + 4, Math.floor(counter / 4294967296));
}

/** Receiver index of a transport message at buf[off]. */
export function transportReceiver(buf: Uint8Array, off: number): number {
  return u32(buf, off + TRANSPORT.receiver);
}

/**
 * Counter of a transport message at buf[off], or -1 when it does not fit in 53 bits (such a
 * counter is beyond REJECT_AFTER_MESSAGES as this implementation enforces it).
 */
export function transportCounter(buf: Uint8Array, off: number): number {
  const lo = u32(buf, off + TRANSPORT.counter);
  const hi = u32(buf, off + TRANSPORT.counter + 4);
  if (hi >= 0x200000) return -1;
  return hi * 4294967296 + lo;
}

export { u32 as readU32LE, putU32 as writeU32LE };

/**
 * Just enough STUN (RFC 5389) for the lab to check that a STUN server answers: a binding request
 * and the XOR-MAPPED-ADDRESS (IPv4) of the success response. meshd's own STUN code lives in the
 * engine; this is independent of it on purpose.
 */
import { randomBytes } from 'node:crypto';
import { LabError } from './errors.js';

export const STUN_MAGIC_COOKIE = 0x2112a442;

/** A 20-byte binding request with the given (or a random) 12-byte transaction id. */
export function stunBindingRequest(txId: Uint8Array = randomBytes(12)): Buffer {
  if (txId.byteLength !== 12) throw new LabError('E_LAB', 'a STUN transaction id is 12 bytes');
  const b = Buffer.alloc(20);
  b.writeUInt16BE(0x0001, 0);
  b.writeUInt16BE(0, 2);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  Buffer.from(txId.buffer, txId.byteOffset, 12).copy(b, 8);
  return b;
}

/**
 * The IPv4 XOR-MAPPED-ADDRESS of a binding success response for txId, as "ip:port";
 * undefined for anything else (never throws).
 */
export function stunMappedAddress(msg: Uint8Array, txId?: Uint8Array): string | undefined {
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  if (b.length < 20 || b.readUInt16BE(0) !== 0x0101 || b.readUInt32BE(4) !== STUN_MAGIC_COOKIE) return undefined;
  const len = b.readUInt16BE(2);
  if (20 + len > b.length) return undefined;
  if (txId && (txId.byteLength !== 12 || !b.subarray(8, 20).equals(Buffer.from(txId.buffer, txId.byteOffset, 12)))) return undefined;
  let off = 20;
  while (off + 4 <= 20 + len) {
    const type = b.readUInt16BE(off);
    const alen = b.readUInt16BE(off + 2);
    const v = off + 4;
    if (v + alen > 20 + len) return undefined;
    if (type === 0x0020 && alen === 8 && b[v + 1] === 0x01) {
      const port = b.readUInt16BE(v + 2) ^ (STUN_MAGIC_COOKIE >>> 16);
      const ip = (b.readUInt32BE(v + 4) ^ STUN_MAGIC_COOKIE) >>> 0;
      return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}:${port}`;
    }
    off = v + alen + ((4 - (alen % 4)) % 4);
  }
  return undefined;
}

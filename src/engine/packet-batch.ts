/**
 * A batch of packets in one preallocated buffer: the unit that moves through the data plane
 * (TUN read → encrypt → UDP send, UDP receive → decrypt → TUN write) without per-packet
 * allocation. Slot i occupies buf[i*slotSize, (i+1)*slotSize); the packet in it starts at
 * offsets[i] within the slot's region (absolute offset into buf) and is lengths[i] bytes long.
 *
 * Layout conventions used by every producer and consumer:
 * - Packets read from the TUN are placed at slot start + HEADROOM, so a WireGuard transport
 *   header (16 bytes) can be written in front and the ciphertext sealed in place, with room
 *   after for padding to 16 bytes and the 16-byte tag.
 * - Datagrams received from UDP are placed at slot start; decrypting in place leaves the inner
 *   packet at slot start + 16.
 * - addrs holds a peer address per slot: 16 bytes of IPv6 (IPv4 as ::ffff:a.b.c.d), then a
 *   2-byte big-endian port, then 2 reserved bytes (ADDR_SIZE = 20).
 */
import { formatIp16, parseIp16At } from '../util/ip.js';

export const HEADROOM = 16;
/** Room after the payload: up to 15 bytes of padding plus the 16-byte Poly1305 tag. */
export const TAILROOM = 32;
export const ADDR_SIZE = 20;
/** Largest datagram we carry (WireGuard transport of a 65535-byte packet would not fit UDP anyway). */
export const DEFAULT_SLOT_SIZE = 2048;
export const DEFAULT_BATCH = 64;

export class PacketBatch {
  readonly buf: Buffer;
  readonly slotSize: number;
  readonly capacity: number;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly addrs: Uint8Array;
  /** Number of valid packets, always at the front (slots 0..count-1). */
  count = 0;

  constructor(capacity = DEFAULT_BATCH, slotSize = DEFAULT_SLOT_SIZE) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    if (!Number.isInteger(slotSize) || slotSize < HEADROOM + TAILROOM + 64) throw new RangeError('slotSize too small');
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.buf = Buffer.alloc(capacity * slotSize);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.addrs = new Uint8Array(capacity * ADDR_SIZE);
    for (let i = 0; i < capacity; i++) this.offsets[i] = i * slotSize;
  }

  /** Absolute start of slot i in buf. */
  slotStart(i: number): number {
    return i * this.slotSize;
  }

  /** A view of packet i (no copy). Allocates a Buffer header: not for the hot path. */
  packet(i: number): Buffer {
    const off = this.offsets[i]!;
    return this.buf.subarray(off, off + this.lengths[i]!);
  }

  /** Reset every slot's offset to slot start + `headroom` and clear the count. */
  reset(headroom = 0): void {
    for (let i = 0; i < this.capacity; i++) {
      this.offsets[i] = i * this.slotSize + headroom;
      this.lengths[i] = 0;
    }
    this.count = 0;
  }

  /** Copy bytes into the next slot (tests and slow paths). Returns the slot index. */
  push(data: Uint8Array, headroom = 0): number {
    if (this.count >= this.capacity) throw new RangeError('batch full');
    if (data.length + headroom > this.slotSize) throw new RangeError('packet larger than slot');
    const i = this.count++;
    const off = i * this.slotSize + headroom;
    this.buf.set(data, off);
    this.offsets[i] = off;
    this.lengths[i] = data.length;
    return i;
  }
}

/**
 * Write an IPv4 or IPv6 address (an IPv6 "%zone" is dropped) and port into addrs slot i. Text
 * that is not an IP address leaves the unspecified address (::) in the slot.
 */
export function writeAddr(addrs: Uint8Array, i: number, ip: string, port: number): void {
  const o = i * ADDR_SIZE;
  addrs.fill(0, o, o + ADDR_SIZE);
  if (!parseIp16At(ip, addrs, o)) addrs.fill(0, o, o + 16);
  addrs[o + 16] = port >> 8;
  addrs[o + 17] = port & 0xff;
}

/** Read addrs slot i back as { ip, port } (IPv4-mapped addresses come back as dotted quads). */
export function readAddr(addrs: Uint8Array, i: number): { ip: string; port: number } {
  const o = i * ADDR_SIZE;
  return { ip: formatIp16(addrs, o), port: (addrs[o + 16]! << 8) | addrs[o + 17]! };
}

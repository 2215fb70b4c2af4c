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

/** Write an IPv4 or IPv6 address and port into addrs slot i. */
export function writeAddr(addrs: Uint8Array, i: number, ip: string, port: number): void {
  const o = i * ADDR_SIZE;
  addrs.fill(0, o, o + ADDR_SIZE);
  if (ip.includes(':')) {
    const parts = expandIPv6(ip);
    for (let k = 0; k < 8; k++) {
      addrs[o + 2 * k] = parts[k]! >> 8;
      addrs[o + 2 * k + 1] = parts[k]! & 0xff;
    }
  } else {
    addrs[o + 10] = 0xff;
    addrs[o + 11] = 0xff;
    const p = ip.split('.');
    for (let k = 0; k < 4; k++) addrs[o + 12 + k] = Number(p[k]);
  }
  addrs[o + 16] = port >> 8;
  addrs[o + 17] = port & 0xff;
}

/** Read addrs slot i back as { ip, port } (IPv4-mapped addresses come back as dotted quads). */
export function readAddr(addrs: Uint8Array, i: number): { ip: string; port: number } {
  const o = i * ADDR_SIZE;
  const port = (addrs[o + 16]! << 8) | addrs[o + 17]!;
  let mapped = addrs[o + 10] === 0xff && addrs[o + 11] === 0xff;
  for (let k = 0; k < 10 && mapped; k++) if (addrs[o + k] !== 0) mapped = false;
  if (mapped) return { ip: `${addrs[o + 12]}.${addrs[o + 13]}.${addrs[o + 14]}.${addrs[o + 15]}`, port };
  const groups: string[] = [];
  for (let k = 0; k < 8; k++) groups.push(((addrs[o + 2 * k]! << 8) | addrs[o + 2 * k + 1]!).toString(16));
  return { ip: compressIPv6(groups), port };
}

function expandIPv6(ip: string): number[] {
  const zone = ip.indexOf('%');
  const s = zone === -1 ? ip : ip.slice(0, zone);
  let head: string[];
  let tail: string[];
  const dbl = s.indexOf('::');
  if (dbl === -1) {
    head = s.split(':');
    tail = [];
  } else {
    head = s.slice(0, dbl) === '' ? [] : s.slice(0, dbl).split(':');
    tail = s.slice(dbl + 2) === '' ? [] : s.slice(dbl + 2).split(':');
  }
  const toGroups = (parts: string[]): number[] => {
    const out: number[] = [];
    for (const p of parts) {
      if (p.includes('.')) {
        const q = p.split('.').map(Number);
        out.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else out.push(parseInt(p, 16));
    }
    return out;
  };
  const h = toGroups(head);
  const t = toGroups(tail);
  const zeros = new Array<number>(8 - h.length - t.length).fill(0);
  return [...h, ...zeros, ...t];
}

function compressIPv6(groups: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}

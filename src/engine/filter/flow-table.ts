/**
 * The bounded table of tracked flows and fragments: a set-associative hash table in
 * preallocated typed arrays (no per-packet allocation, no strings). A key hashes to one bucket
 * of WAYS slots; lookup scans that bucket; insertion takes a free or expired slot in it, else
 * evicts the slot that expires soonest (LRU-ish, since every packet on a flow pushes its expiry
 * forward). Expiry is lazy: an expired slot is simply ignored by lookups and reused by inserts.
 *
 * Key (11 int32 words): meta = family << 16 | kind << 8 | protocol code, the local address
 * (this node's side), the remote address, and ports = localPort << 16 | remotePort (for ICMP
 * echo: the identifier and 0; for fragments: the fragment id).
 */
import { randomBytes } from 'node:crypto';

export const WAYS = 8;
const STRIDE = 16;
// Slot layout (int32 words).
const TAG = 0;
const META = 1;
const LOCAL = 2; // 4 words
const REMOTE = 6; // 4 words
const PORTS = 10;
const ORIGIN = 11;
const STATE = 12;
const GEN = 13;

export const KIND_FLOW = 1;
export const KIND_FRAG = 2;

/** This node sent the first packet of the flow: replies pass whatever the policy says. */
export const ORIGIN_LOCAL = 1;
/** A peer opened the flow and the policy of generation `gen` accepted it. */
export const ORIGIN_REMOTE = 2;

export function flowMeta(family: 4 | 6, kind: number, proto: number): number {
  return (family << 16) | (kind << 8) | proto;
}

export class FlowTable {
  readonly capacity: number;
  private readonly words: Int32Array;
  private readonly expiry: Float64Array;
  private readonly bucketMask: number;
  private readonly seed: number;
  /** Live slots overwritten to make room. */
  evictions = 0;

  /** `capacity` is rounded up to a power of two, at least WAYS. */
  constructor(capacity: number) {
    let buckets = 1;
    while (buckets * WAYS < capacity) buckets *= 2;
    this.capacity = buckets * WAYS;
    this.bucketMask = buckets - 1;
    this.words = new Int32Array(this.capacity * STRIDE);
    this.expiry = new Float64Array(this.capacity);
    this.seed = randomBytes(4).readInt32LE(0);
  }

  /**
   * Seeded hash of a key; never 0 (0 marks a free slot). The words are multiplied independently
   * (so the CPU overlaps the multiplications) and then mixed by the murmur3 finaliser. The seed is
   * random per table, so a peer cannot precompute tuples that all land in one bucket.
   */
  private hash(meta: number, l0: number, l1: number, l2: number, l3: number, r0: number, r1: number, r2: number, r3: number, ports: number): number {
    const s = this.seed;
    let h =
      Math.imul(l0 ^ s, 0x9e3779b1) ^
      Math.imul(r0 + s, 0x85ebca6b) ^
      Math.imul((ports ^ s) + meta, 0xc2b2ae35) ^
      Math.imul(l1 ^ s, 0x27d4eb2f) ^
      Math.imul(l2 + s, 0x165667b1) ^
      Math.imul(l3 - s, 0xd3a2646c) ^
      Math.imul(r1 ^ meta, 0xfd7046c5) ^
      Math.imul(r2 + meta, 0xb55a4f09) ^
      Math.imul(r3 - meta, 0x7feb352d);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h | 1;
  }

  /** Slot index of the live entry with this key, or -1. */
  find(meta: number, l0: number, l1: number, l2: number, l3: number, r0: number, r1: number, r2: number, r3: number, ports: number, now: number): number {
    const tag = this.hash(meta, l0, l1, l2, l3, r0, r1, r2, r3, ports);
    const w = this.words;
    const first = ((tag >>> 3) & this.bucketMask) * WAYS;
    for (let s = first; s < first + WAYS; s++) {
      const b = s * STRIDE;
      if (
        w[b + TAG] === tag &&
        this.expiry[s]! > now &&
        w[b + META] === meta &&
        w[b + PORTS] === ports &&
        w[b + LOCAL] === l0 &&
        w[b + REMOTE] === r0 &&
        w[b + LOCAL + 1] === l1 &&
        w[b + LOCAL + 2] === l2 &&
        w[b + LOCAL + 3] === l3 &&
        w[b + REMOTE + 1] === r1 &&
        w[b + REMOTE + 2] === r2 &&
        w[b + REMOTE + 3] === r3
      ) {
        return s;
      }
    }
    return -1;
  }

  /**
   * Add an entry (the caller has just seen find() miss for this key). Returns its slot; origin,
   * state and gen start at 0 and the entry expires at `expiresAt`.
   */
  insert(meta: number, l0: number, l1: number, l2: number, l3: number, r0: number, r1: number, r2: number, r3: number, ports: number, now: number, expiresAt: number): number {
    const tag = this.hash(meta, l0, l1, l2, l3, r0, r1, r2, r3, ports);
    const w = this.words;
    const first = ((tag >>> 3) & this.bucketMask) * WAYS;
    let victim = first;
    let victimExpiry = Infinity;
    for (let s = first; s < first + WAYS; s++) {
      const e = this.expiry[s]!;
      if (w[s * STRIDE + TAG] === 0 || e <= now) {
        victim = s;
        victimExpiry = -1;
        break;
      }
      if (e < victimExpiry) {
        victim = s;
        victimExpiry = e;
      }
    }
    if (victimExpiry !== -1) this.evictions++;
    const b = victim * STRIDE;
    w[b + TAG] = tag;
    w[b + META] = meta;
    w[b + LOCAL] = l0;
    w[b + LOCAL + 1] = l1;
    w[b + LOCAL + 2] = l2;
    w[b + LOCAL + 3] = l3;
    w[b + REMOTE] = r0;
    w[b + REMOTE + 1] = r1;
    w[b + REMOTE + 2] = r2;
    w[b + REMOTE + 3] = r3;
    w[b + PORTS] = ports;
    w[b + ORIGIN] = 0;
    w[b + STATE] = 0;
    w[b + GEN] = 0;
    this.expiry[victim] = expiresAt;
    return victim;
  }

  origin(slot: number): number {
    return this.words[slot * STRIDE + ORIGIN]!;
  }
  setOrigin(slot: number, origin: number): void {
    this.words[slot * STRIDE + ORIGIN] = origin;
  }
  state(slot: number): number {
    return this.words[slot * STRIDE + STATE]!;
  }
  setState(slot: number, state: number): void {
    this.words[slot * STRIDE + STATE] = state;
  }
  gen(slot: number): number {
    return this.words[slot * STRIDE + GEN]!;
  }
  setGen(slot: number, gen: number): void {
    this.words[slot * STRIDE + GEN] = gen;
  }
  setExpiry(slot: number, at: number): void {
    this.expiry[slot] = at;
  }

  /** Number of live entries (walks the whole table: for status, not for packets). */
  liveCount(now: number): number {
    let n = 0;
    for (let s = 0; s < this.capacity; s++) if (this.words[s * STRIDE + TAG] !== 0 && this.expiry[s]! > now) n++;
    return n;
  }

  clear(): void {
    this.words.fill(0);
    this.expiry.fill(0);
  }
}

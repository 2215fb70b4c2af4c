/**
 * Allowed IPs: longest-prefix match from an address to a peer, one path-compressed binary trie
 * for IPv4 and one for IPv6 (the structure wireguard-go and the kernel use). The same table routes
 * outgoing packets by destination and checks that a decrypted packet's source belongs to the peer
 * that sent it. Lookups read the address straight out of a packet buffer without allocating.
 */
import { formatPrefix, makePrefix, type IpPrefix } from '../../util/prefix.js';

class Node<T> {
  readonly children: [Node<T> | null, Node<T> | null] = [null, null];
  constructor(
    /** Address as big-endian 32-bit words, bits beyond `cidr` cleared. */
    readonly key: Uint32Array,
    readonly cidr: number,
    public value: T | null,
  ) {}
}

function bitAt(key: Uint32Array, i: number): 0 | 1 {
  return ((key[i >>> 5]! >>> (31 - (i & 31))) & 1) as 0 | 1;
}

/** Number of leading bits a and b share, at most `max`. */
function commonBits(a: Uint32Array, b: Uint32Array, max: number): number {
  for (let w = 0; w < a.length; w++) {
    const x = (a[w]! ^ b[w]!) >>> 0;
    if (x !== 0) return Math.min(w * 32 + Math.clz32(x), max);
  }
  return Math.min(a.length * 32, max);
}

/** Does `key` start with the first `cidr` bits of `prefix`? */
function prefixMatches(prefix: Uint32Array, key: Uint32Array, cidr: number): boolean {
  for (let w = 0; w < prefix.length; w++) {
    const n = cidr - w * 32;
    if (n <= 0) return true;
    if (n >= 32) {
      if (prefix[w] !== key[w]) return false;
    } else {
      const mask = (0xffffffff << (32 - n)) >>> 0;
      if (((prefix[w]! ^ key[w]!) & mask) !== 0) return false;
    }
  }
  return true;
}

function maskWords(key: Uint32Array, cidr: number): Uint32Array {
  const out = new Uint32Array(key.length);
  for (let w = 0; w < key.length; w++) {
    const n = cidr - w * 32;
    if (n >= 32) out[w] = key[w]!;
    else if (n > 0) out[w] = (key[w]! & (0xffffffff << (32 - n))) >>> 0;
  }
  return out;
}

function wordsFromBytes(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  for (let w = 0; w < out.length; w++) out[w] = ((b[4 * w]! << 24) | (b[4 * w + 1]! << 16) | (b[4 * w + 2]! << 8) | b[4 * w + 3]!) >>> 0;
  return out;
}

function bytesFromWords(k: Uint32Array): Uint8Array {
  const out = new Uint8Array(k.length * 4);
  for (let w = 0; w < k.length; w++) {
    out[4 * w] = k[w]! >>> 24;
    out[4 * w + 1] = (k[w]! >>> 16) & 0xff;
    out[4 * w + 2] = (k[w]! >>> 8) & 0xff;
    out[4 * w + 3] = k[w]! & 0xff;
  }
  return out;
}

/** One address family. */
export class PrefixTrie<T> {
  private root: Node<T> | null = null;
  private readonly maxBits: number;
  private readonly scratch: Uint32Array;

  constructor(readonly words: 1 | 4) {
    this.maxBits = words * 32;
    this.scratch = new Uint32Array(words);
  }

  insert(addr: Uint8Array, cidr: number, value: T): void {
    if (addr.length !== this.words * 4 || cidr < 0 || cidr > this.maxBits) throw new RangeError('bad prefix');
    this.root = this.insertAt(this.root, maskWords(wordsFromBytes(addr), cidr), cidr, value);
  }

  private insertAt(node: Node<T> | null, key: Uint32Array, cidr: number, value: T): Node<T> {
    if (node === null) return new Node(key, cidr, value);
    const common = commonBits(node.key, key, Math.min(node.cidr, cidr));
    if (common === node.cidr) {
      if (node.cidr === cidr) {
        node.value = value;
        return node;
      }
      const b = bitAt(key, node.cidr);
      node.children[b] = this.insertAt(node.children[b], key, cidr, value);
      return node;
    }
    if (common === cidr) {
      const n = new Node(key, cidr, value);
      n.children[bitAt(node.key, cidr)] = node;
      return n;
    }
    const split = new Node<T>(maskWords(key, common), common, null);
    split.children[bitAt(node.key, common)] = node;
    split.children[bitAt(key, common)] = new Node(key, cidr, value);
    return split;
  }

  /** Remove the exact prefix; returns whether it was there. */
  remove(addr: Uint8Array, cidr: number): boolean {
    if (addr.length !== this.words * 4) return false;
    const key = maskWords(wordsFromBytes(addr), cidr);
    let found = false;
    const walk = (node: Node<T> | null): Node<T> | null => {
      if (node === null) return null;
      if (node.cidr > cidr || commonBits(node.key, key, node.cidr) < node.cidr) return node;
      if (node.cidr === cidr) {
        found = node.value !== null;
        node.value = null;
      } else {
        const b = bitAt(key, node.cidr);
        node.children[b] = walk(node.children[b]);
      }
      return prune(node);
    };
    this.root = walk(this.root);
    return found;
  }

  /** Remove every prefix that maps to `value`. */
  removeValue(value: T): void {
    const walk = (node: Node<T> | null): Node<T> | null => {
      if (node === null) return null;
      node.children[0] = walk(node.children[0]);
      node.children[1] = walk(node.children[1]);
      if (node.value === value) node.value = null;
      return prune(node);
    };
    this.root = walk(this.root);
  }

  /** Longest-prefix match for the address at buf[off .. off + 4·words). */
  lookupAt(buf: Uint8Array, off: number): T | null {
    const k = this.scratch;
    for (let w = 0; w < this.words; w++) {
      const o = off + 4 * w;
      k[w] = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
    }
    let node = this.root;
    let found: T | null = null;
    while (node !== null) {
      if (!prefixMatches(node.key, k, node.cidr)) break;
      if (node.value !== null) found = node.value;
      if (node.cidr === this.maxBits) break;
      node = node.children[bitAt(k, node.cidr)];
    }
    return found;
  }

  lookup(addr: Uint8Array): T | null {
    if (addr.length !== this.words * 4) return null;
    return this.lookupAt(addr, 0);
  }

  /** Every (prefix, value) pair, in trie order. */
  entries(): Array<{ prefix: IpPrefix; value: T }> {
    const out: Array<{ prefix: IpPrefix; value: T }> = [];
    const walk = (node: Node<T> | null): void => {
      if (node === null) return;
      if (node.value !== null) out.push({ prefix: makePrefix(bytesFromWords(node.key), node.cidr), value: node.value });
      walk(node.children[0]);
      walk(node.children[1]);
    };
    walk(this.root);
    return out;
  }
}

function prune<T>(node: Node<T>): Node<T> | null {
  if (node.value !== null) return node;
  const [a, b] = node.children;
  if (a !== null && b !== null) return node;
  return a ?? b;
}

/** Both families. */
export class AllowedIps<T> {
  readonly v4 = new PrefixTrie<T>(1);
  readonly v6 = new PrefixTrie<T>(4);

  insert(p: IpPrefix, value: T): void {
    (p.addr.length === 4 ? this.v4 : this.v6).insert(p.addr, p.bits, value);
  }

  remove(p: IpPrefix): boolean {
    return (p.addr.length === 4 ? this.v4 : this.v6).remove(p.addr, p.bits);
  }

  removeValue(value: T): void {
    this.v4.removeValue(value);
    this.v6.removeValue(value);
  }

  lookup(addr: Uint8Array): T | null {
    return addr.length === 4 ? this.v4.lookup(addr) : addr.length === 16 ? this.v6.lookup(addr) : null;
  }

  /** Peer for an IP packet's destination (buf[off] is the first byte of the IP header). */
  lookupDestination(buf: Uint8Array, off: number, len: number): T | null {
    const v = buf[off]! >> 4;
    if (v === 4 && len >= 20) return this.v4.lookupAt(buf, off + 16);
    if (v === 6 && len >= 40) return this.v6.lookupAt(buf, off + 24);
    return null;
  }

  /** Peer for an IP packet's source. */
  lookupSource(buf: Uint8Array, off: number, len: number): T | null {
    const v = buf[off]! >> 4;
    if (v === 4 && len >= 20) return this.v4.lookupAt(buf, off + 12);
    if (v === 6 && len >= 40) return this.v6.lookupAt(buf, off + 8);
    return null;
  }

  /** The prefixes routed to `value`, formatted. */
  prefixesOf(value: T): string[] {
    return [...this.v4.entries(), ...this.v6.entries()].filter((e) => e.value === value).map((e) => formatPrefix(e.prefix));
  }
}

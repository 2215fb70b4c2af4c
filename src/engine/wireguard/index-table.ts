/**
 * Local session indices: the 32-bit numbers we hand out as "sender" in handshake messages and
 * that peers put in the "receiver" field of everything they send us. Each maps to the peer and,
 * once the handshake completed, to the keypair. Indices are random, unique and never 0.
 */
import type { Keypair } from './keypair.js';
import type { Rng } from './cookie.js';

export interface IndexEntry<P> {
  readonly peer: P;
  /** null while the index belongs to an in-progress handshake. */
  keypair: Keypair<P> | null;
}

export class IndexTable<P> {
  private readonly map = new Map<number, IndexEntry<P>>();

  constructor(private readonly rng: Rng) {}

  get size(): number {
    return this.map.size;
  }

  /** A fresh index for a peer's new handshake. */
  newHandshakeIndex(peer: P): number {
    for (;;) {
      const b = this.rng(4);
      const idx = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
      if (idx === 0 || this.map.has(idx)) continue;
      this.map.set(idx, { peer, keypair: null });
      return idx;
    }
  }

  /** Turn a handshake index into a keypair index. */
  attachKeypair(index: number, keypair: Keypair<P>): void {
    const e = this.map.get(index);
    if (e !== undefined) e.keypair = keypair;
    else this.map.set(index, { peer: keypair.peer, keypair });
  }

  get(index: number): IndexEntry<P> | undefined {
    return this.map.get(index);
  }

  delete(index: number): void {
    if (index !== 0) this.map.delete(index);
  }

  /** Drop every index of a peer (peer removed). */
  deletePeer(peer: P): void {
    for (const [k, v] of this.map) if (v.peer === peer) this.map.delete(k);
  }

  clear(): void {
    this.map.clear();
  }
}

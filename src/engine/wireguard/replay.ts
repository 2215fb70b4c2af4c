/**
 * Sliding-window replay filter over transport counters (RFC 6479 style, as wireguard-go does):
 * a ring of bit blocks; moving the window forward clears the blocks it passes over, so the cost
 * per packet is O(1) amortised. Window: (RING_BLOCKS − 1) × 32 = 8160 counters behind the
 * greatest one seen.
 */
import { REJECT_AFTER_MESSAGES } from './constants.js';

const BLOCK_BITS_LOG = 5;
const BLOCK_BITS = 1 << BLOCK_BITS_LOG;
const RING_BLOCKS = 1 << 8;
const BLOCK_MASK = RING_BLOCKS - 1;
const BIT_MASK = BLOCK_BITS - 1;
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

export class ReplayFilter {
  private readonly ring = new Uint32Array(RING_BLOCKS);
  /** Greatest counter accepted so far; -1 before the first. */
  private last = -1;

  reset(): void {
    this.ring.fill(0);
    this.last = -1;
  }

  /** Could `counter` be accepted? Does not change state (a cheap check before decryption). */
  mayAccept(counter: number, limit = REJECT_AFTER_MESSAGES): boolean {
    if (counter < 0 || counter >= limit) return false;
    if (counter > this.last) return true;
    if (this.last - counter > REPLAY_WINDOW_SIZE) return false;
    const block = Math.floor(counter / BLOCK_BITS) & BLOCK_MASK;
    return (this.ring[block]! & (1 << (counter & BIT_MASK))) === 0;
  }

  /**
   * Accept `counter` if it is new and inside the window, marking it seen. Call only after the
   * packet authenticated, so forged counters cannot move the window.
   */
  validate(counter: number, limit = REJECT_AFTER_MESSAGES): boolean {
    if (counter < 0 || counter >= limit) return false;
    const indexBlock = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = this.last < 0 ? -1 : Math.floor(this.last / BLOCK_BITS);
      let diff = indexBlock - current;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = current + 1; i <= current + diff; i++) this.ring[i & BLOCK_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const block = indexBlock & BLOCK_MASK;
    const bit = 1 << (counter & BIT_MASK);
    const old = this.ring[block]!;
    if ((old & bit) !== 0) return false;
    this.ring[block] = old | bit;
    return true;
  }
}

/**
 * Per-source-address token bucket for handshake messages while the device is under load
 * (wireguard-go's numbers: 20 per second, bursts of 5). Only consulted under load, so it may
 * allocate; entries idle for a second are forgotten by `sweep`.
 */
const PACKETS_PER_SECOND = 20;
const PACKETS_BURSTABLE = 5;
const COST = 1000 / PACKETS_PER_SECOND;
const MAX_TOKENS = COST * PACKETS_BURSTABLE;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; last: number }>();

  /** Allow one more handshake from the address in addrs[off .. off+16)? `now` in ms. */
  allow(addrs: Uint8Array, off: number, now: number): boolean {
    let key = '';
    for (let i = 0; i < 16; i++) key += String.fromCharCode(addrs[off + i]!);
    const b = this.buckets.get(key);
    if (b === undefined) {
      this.buckets.set(key, { tokens: MAX_TOKENS - COST, last: now });
      return true;
    }
    b.tokens = Math.min(MAX_TOKENS, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens < COST) return false;
    b.tokens -= COST;
    return true;
  }

  sweep(now: number): void {
    for (const [k, b] of this.buckets) if (now - b.last > 1000) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

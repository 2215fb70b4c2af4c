/**
 * The relay connections of one magic socket: the home relay (always connected, marked preferred)
 * and, opened lazily, the relays other peers call home — those close after
 * RELAY_IDLE_TIMEOUT_MS without a send and reopen on the next one. Every connection delivers
 * what it receives to one handler.
 */
import type { Logger } from '../../util/log.js';
import { RelayClient, type RelayClientState } from '../relay/client.js';
import { RELAY_IDLE_TIMEOUT_MS } from './constants.js';

export interface RelayConfig {
  /** http(s)://host:port/derp or ws(s)://… */
  url: string;
  /** UDP port of its STUN responder (default 3478). */
  stunPort?: number;
  /** A region label (display only). */
  region?: string;
  /**
   * For https/wss: the pinned TLS key fingerprint from the relay record (base64url SHA-256 of
   * the certificate's SPKI); absent: the certificate must verify normally.
   */
  fingerprint?: string;
}

export interface RelaySetOptions {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  onPacket: (src: Uint8Array, packet: Uint8Array, url: string) => void;
  onPeerGone?: (peer: Uint8Array, reason: number, url: string) => void;
  log?: Logger;
  idleTimeoutMs?: number;
}

export interface RelayStatus {
  url: string;
  home: boolean;
  state: RelayClientState;
  region?: string;
  /** Round trip to its STUN port (from the last discovery), ms. */
  stunRttMs?: number;
  packetsSent: number;
  packetsReceived: number;
  packetsDropped: number;
  lastError?: string;
}

/** Canonical form of a relay URL (as RelayClient would connect to it). */
export function normalizeRelayUrl(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/derp';
  return u.toString();
}

export class RelaySet {
  private readonly clients = new Map<string, RelayClient>();
  private configs = new Map<string, RelayConfig>();
  private homeUrl: string | null = null;
  private readonly stunRtt = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: RelaySetOptions) {}

  /** The configured relays (normalized URLs). */
  get relays(): RelayConfig[] {
    return [...this.configs.values()];
  }

  get home(): string | null {
    return this.homeUrl;
  }

  setRelays(relays: readonly RelayConfig[]): void {
    const next = new Map<string, RelayConfig>();
    for (const r of relays) {
      const url = normalizeRelayUrl(r.url);
      next.set(url, { ...r, url });
    }
    const old = this.configs;
    this.configs = next;
    // A relay whose pin changed gets a new connection (made with the new pin).
    for (const [url, c] of [...this.clients]) {
      if (old.get(url)?.fingerprint === next.get(url)?.fingerprint) continue;
      this.clients.delete(url);
      void c.stop();
      if (url === this.homeUrl && !this.stopped) this.client(url).start();
    }
  }

  noteStunRtt(url: string, rttMs: number | null): void {
    if (rttMs === null) this.stunRtt.delete(url);
    else this.stunRtt.set(url, rttMs);
  }

  /** Make url the home relay (null: none). The old home's connection is closed. */
  setHome(url: string | null): void {
    const next = url === null ? null : normalizeRelayUrl(url);
    if (next === this.homeUrl || this.stopped) return;
    const old = this.homeUrl;
    this.homeUrl = next;
    if (old !== null) {
      const c = this.clients.get(old);
      this.clients.delete(old);
      void c?.stop();
    }
    if (next !== null) {
      const existing = this.clients.get(next);
      if (existing) {
        this.clients.delete(next);
        void existing.stop();
      }
      this.client(next).start();
    }
    this.opts.log?.info('relay-home', { url: next, previous: old });
  }

  private client(url: string): RelayClient {
    let c = this.clients.get(url);
    if (c !== undefined) return c;
    const home = url === this.homeUrl;
    const fingerprint = this.configs.get(url)?.fingerprint;
    c = new RelayClient({
      url,
      ...(fingerprint !== undefined ? { tlsFingerprint: fingerprint } : {}),
      privateKey: this.opts.privateKey,
      publicKey: this.opts.publicKey,
      preferred: home,
      idleTimeoutMs: home ? 0 : (this.opts.idleTimeoutMs ?? RELAY_IDLE_TIMEOUT_MS),
      backoffMaxMs: 10_000,
      onPacket: (src, packet) => this.opts.onPacket(src, packet, url),
      onPeerGone: (peer, reason) => this.opts.onPeerGone?.(peer, reason, url),
      onStateChange: (state, err) => this.opts.log?.log(err ? 'warn' : 'info', 'relay-state', { url, state, ...(err ? { error: err.message } : {}) }),
    });
    this.clients.set(url, c);
    return c;
  }

  /** Send packet to dst through the relay at url (connecting lazily). Returns false when dropped. */
  send(url: string, dst: Uint8Array, packet: Uint8Array): boolean {
    if (this.stopped) return false;
    try {
      return this.client(url).send(dst, packet);
    } catch {
      return false;
    }
  }

  /** DERP ping round trip through a connected relay, ms; null when not connected or no answer. */
  async latency(url: string, timeoutMs = 2000): Promise<number | null> {
    const c = this.clients.get(url);
    if (c === undefined || c.state !== 'connected') return null;
    try {
      return await c.ping(timeoutMs);
    } catch {
      return null;
    }
  }

  isConnected(url: string): boolean {
    return this.clients.get(url)?.state === 'connected';
  }

  status(): RelayStatus[] {
    const urls = new Set<string>([...this.configs.keys(), ...this.clients.keys()]);
    return [...urls].map((url) => {
      const c = this.clients.get(url);
      const s = c?.stats();
      const cfg = this.configs.get(url);
      const rtt = this.stunRtt.get(url);
      return {
        url,
        home: url === this.homeUrl,
        state: c?.state ?? 'idle',
        ...(cfg?.region !== undefined ? { region: cfg.region } : {}),
        ...(rtt !== undefined ? { stunRttMs: Math.round(rtt * 1000) / 1000 } : {}),
        packetsSent: s?.packetsSent ?? 0,
        packetsReceived: s?.packetsReceived ?? 0,
        packetsDropped: s?.packetsDropped ?? 0,
        ...(s?.lastError !== undefined ? { lastError: s.lastError } : {}),
      };
    });
  }

  /** Close every connection (except the home) whose relay is neither configured nor in `keep`. */
  closeUnused(keep: ReadonlySet<string>): void {
    for (const [url, c] of this.clients) {
      if (url === this.homeUrl || this.configs.has(url) || keep.has(url)) continue;
      this.clients.delete(url);
      void c.stop();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map((c) => c.stop()));
  }
}

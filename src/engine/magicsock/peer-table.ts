/**
 * Who is who for the magic socket: magic peers (those with a disco key) by WireGuard key, by
 * disco key, by the id their relayed packets are tagged with, and by every candidate address
 * they may send from; plain WireGuard peers with the address endpoint the device uses for them.
 * Lookups on the receive path are one Map get (IPv4 addresses by a number key, no string).
 */
import { MeshdError } from '../../errors.js';
import { hexOf as hexKey, sameBytes } from '../../util/bytes.js';
import { AddrEndpoint } from '../wireguard/addr-endpoint.js';
import type { Endpoint } from '../wireguard/bind.js';
import { addrAt, parseAddr, v4Key } from './addr.js';
import { discoSharedKey } from './disco.js';
import { PeerEndpoint, type Candidate, type EndpointIo } from './endpoint.js';
import { normalizeRelayUrl } from './relay-set.js';

export interface MagicPeerConfig {
  publicKey: Uint8Array;
  /** null: a plain WireGuard peer (first endpoint used as is, no disco, no relay). */
  discoKey: Uint8Array | null;
  endpoints: readonly string[];
  /** The peer's home relay URL (null: reach it through ours). */
  homeRelay?: string | null;
}

export function b64(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('base64');
}

export class PeerTable {
  private nextId = 1;
  readonly byKey = new Map<string, PeerEndpoint>();
  readonly byDisco = new Map<string, PeerEndpoint>();
  readonly byId = new Map<number, PeerEndpoint>();
  private readonly byV4 = new Map<number, PeerEndpoint>();
  private readonly byOther = new Map<string, PeerEndpoint>();
  private readonly plainPeers = new Map<string, Endpoint | null>();

  constructor(
    private readonly io: EndpointIo,
    private readonly discoPrivateKey: Uint8Array,
  ) {}

  /**
   * Add or update a peer; returns the Endpoint for the device (see MagicSock.upsertPeer) and,
   * when a magic peer became a plain one, the PeerEndpoint that was closed.
   */
  upsert(cfg: MagicPeerConfig): { endpoint: Endpoint | null; removed: PeerEndpoint | null } {
    if (cfg.publicKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'peer public key must be 32 bytes');
    const key = b64(cfg.publicKey);
    if (cfg.discoKey === null) {
      const removed = this.removeMagicPeer(key);
      let ep: Endpoint | null = null;
      for (const s of cfg.endpoints) {
        const a = parseAddr(s);
        if (a !== null) {
          ep = AddrEndpoint.parse(a.key);
          break;
        }
      }
      this.plainPeers.set(key, ep);
      return { endpoint: ep, removed };
    }
    if (cfg.discoKey.length !== 32) throw new MeshdError('E_CONFIG_INVALID', 'peer disco key must be 32 bytes');
    this.plainPeers.delete(key);
    let ep = this.byKey.get(key);
    if (ep === undefined) {
      ep = new PeerEndpoint(this.io, this.nextId++, cfg.publicKey);
      this.byKey.set(key, ep);
      this.byId.set(ep.id, ep);
    }
    const oldDisco = ep.discoKey;
    if (oldDisco === null || !sameBytes(oldDisco, cfg.discoKey)) {
      if (oldDisco !== null) this.byDisco.delete(hexKey(oldDisco));
      let shared: Uint8Array;
      try {
        shared = discoSharedKey(this.discoPrivateKey, cfg.discoKey);
      } catch (e) {
        throw new MeshdError('E_CONFIG_INVALID', `peer ${key}: ${(e as Error).message}`);
      }
      ep.sharedKey = shared;
      this.byDisco.set(hexKey(cfg.discoKey), ep);
    }
    ep.setConfig({
      discoKey: cfg.discoKey,
      endpoints: cfg.endpoints,
      relayUrl: cfg.homeRelay ? normalizeRelayUrl(cfg.homeRelay) : null,
    });
    return { endpoint: ep, removed: null };
  }

  /** Forget a peer (base64 key); returns its closed PeerEndpoint when it was a magic peer. */
  remove(key: string): PeerEndpoint | null {
    this.plainPeers.delete(key);
    return this.removeMagicPeer(key);
  }

  private removeMagicPeer(key: string): PeerEndpoint | null {
    const ep = this.byKey.get(key);
    if (ep === undefined) return null;
    ep.close();
    this.byKey.delete(key);
    this.byId.delete(ep.id);
    if (ep.discoKey !== null && this.byDisco.get(hexKey(ep.discoKey)) === ep) this.byDisco.delete(hexKey(ep.discoKey));
    return ep;
  }

  /** The magic peer that has the source address of datagram i as a candidate. */
  ownerOf(addrs: Uint8Array, i: number): PeerEndpoint | undefined {
    const k = v4Key(addrs, i);
    if (k !== -1) return this.byV4.get(k);
    if (this.byOther.size === 0) return undefined;
    return this.byOther.get(addrAt(addrs, i).key);
  }

  mapCandidate(ep: PeerEndpoint, c: Candidate): void {
    const k = v4Key(c.addr, 0);
    if (k !== -1) this.byV4.set(k, ep);
    else this.byOther.set(c.key, ep);
  }

  unmapCandidate(ep: PeerEndpoint, c: Candidate): void {
    const k = v4Key(c.addr, 0);
    if (k !== -1) {
      if (this.byV4.get(k) === ep) this.byV4.delete(k);
    } else if (this.byOther.get(c.key) === ep) this.byOther.delete(c.key);
  }
}

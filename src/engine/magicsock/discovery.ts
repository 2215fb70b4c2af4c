/**
 * Endpoint discovery for the magic socket: which addresses peers can reach us at. A round runs
 * STUN through the magic socket's UDP socket (netcheck.ts), collects the local interface
 * addresses, classifies the NAT and picks the home relay by latency; it repeats every 20–26 s
 * (5 s while UDP seems blocked, soon after a direct path dies). When the result changes, the
 * active peers are told (they re-send call-me-maybe) and so are the listeners (the agent, which
 * publishes the endpoint record).
 */
import { networkInterfaces } from 'node:os';
import type { Clock, Ticker } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import type { BatchUdpSocket } from '../udp/batch-udp-socket.js';
import { parseAddr } from './addr.js';
import { RESTUN_MAX_MS, RESTUN_MIN_MS, RESTUN_NO_UDP_MS, RESTUN_ON_PATH_LOSS_MIN_MS } from './constants.js';
import { resolveStunTargets, runNetcheck, type NetcheckReport, type StunProbe } from './netcheck.js';
import type { RelaySet } from './relay-set.js';
import type { IpPort, NatMapping, StunClient } from './stun.js';


export interface LocalEndpoints {
  /** "ip:port" as STUN servers saw us. */
  publicEndpoints: string[];
  /** "ip:port" of our interface addresses with the socket's port. */
  localEndpoints: string[];
  natType: NatMapping;
  /** Base64 disco public key. */
  discoKey: string;
  preferredRelay: string | null;
}

/** What discovery uses of the magic socket. */
export interface DiscoveryHost {
  readonly socket: BatchUdpSocket;
  readonly relays: RelaySet;
  readonly stun: StunClient;
  readonly discoKeyBase64: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Our endpoints changed after the first round: tell the peers that are talking. */
  endpointsChanged(now: number): void;
}

export interface DiscoveryOptions {
  /** Interfaces whose addresses are not local endpoints (the TUN). */
  excludeInterfaces?: readonly string[];
  /** Addresses that are never local endpoints (e.g. inside the mesh prefixes). */
  excludeIp?: (ip: string) => boolean;
  stunTimeoutMs: number;
}

export class EndpointDiscovery {
  /** STUN servers besides the relays' ("host:port"). */
  stunServers: string[] = [];
  /** The home relay the configuration fixed (null: lowest latency). */
  configuredHome: string | null = null;
  publicEndpoints: string[] = [];
  localEndpoints: string[] = [];
  /** Public and local endpoints, parsed, without duplicates: what call-me-maybe carries. */
  ourEndpointList: IpPort[] = [];
  natType: NatMapping = 'unknown';
  udpWorks: boolean | null = null;
  lastReport: NetcheckReport | null = null;
  lastDiscoveryAt: Date | null = null;
  private lastDiscoveryStart = -Infinity;
  private discovering: Promise<void> | null = null;
  private discoverAgain = false;
  private discoveryTimer: Ticker | null = null;
  private readonly listeners = new Set<(e: LocalEndpoints) => void>();
  private lastPublished = '';
  private readonly excluded: Set<string>;
  private readonly excludeIp: (ip: string) => boolean;
  private readonly stunTimeoutMs: number;
  private closed = false;

  constructor(
    private readonly host: DiscoveryHost,
    opts: DiscoveryOptions,
  ) {
    this.excluded = new Set(opts.excludeInterfaces ?? []);
    this.excludeIp = opts.excludeIp ?? (() => false);
    this.stunTimeoutMs = opts.stunTimeoutMs;
    this.refreshLocalEndpoints();
    this.rebuildOurEndpoints();
  }

  close(): void {
    this.closed = true;
    this.discoveryTimer?.cancel();
    this.discoveryTimer = null;
  }

  onChanged(cb: (e: LocalEndpoints) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  info(): LocalEndpoints {
    return {
      publicEndpoints: [...this.publicEndpoints],
      localEndpoints: [...this.localEndpoints],
      natType: this.natType,
      discoKey: this.host.discoKeyBase64,
      preferredRelay: this.host.relays.home,
    };
  }

  /** What discovery found, for the magic socket's status. */
  status(): { publicEndpoints: string[]; localEndpoints: string[]; natType: NatMapping; udpWorks: boolean | null; stun: StunProbe[]; lastDiscovery: string | null } {
    return {
      publicEndpoints: [...this.publicEndpoints],
      localEndpoints: [...this.localEndpoints],
      natType: this.natType,
      udpWorks: this.udpWorks,
      stun: this.lastReport?.stun ?? [],
      lastDiscovery: this.lastDiscoveryAt?.toISOString() ?? null,
    };
  }

  /** Run a round now. Concurrent calls share the running round (and schedule one more). */
  discover(reason: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.discovering !== null) {
      this.discoverAgain = true;
      return this.discovering;
    }
    this.discovering = this.runDiscovery(reason).finally(() => {
      this.discovering = null;
      if (this.discoverAgain && !this.closed) {
        this.discoverAgain = false;
        void this.discover('again');
      }
    });
    return this.discovering;
  }

  private async runDiscovery(reason: string): Promise<void> {
    const { relays, stun } = this.host;
    this.discoveryTimer?.cancel();
    this.discoveryTimer = null;
    this.lastDiscoveryStart = this.host.clock.now();
    let report: NetcheckReport | null = null;
    try {
      const { targets, errors } = await resolveStunTargets(relays.relays, this.stunServers);
      report = await runNetcheck({ stun, targets, errors, relays: relays.relays, timeoutMs: this.stunTimeoutMs, clock: this.host.clock });
    } catch (e) {
      this.host.log.warn('discovery-failed', { reason, error: (e as Error).message });
    }
    if (this.closed) return;
    this.refreshLocalEndpoints();
    if (report !== null) {
      this.lastReport = report;
      this.lastDiscoveryAt = new Date();
      this.udpWorks = report.udp;
      if (report.udp === true || report.udp === null) {
        this.publicEndpoints = report.publicEndpoints;
        this.natType = report.mapping;
      } else {
        this.publicEndpoints = [];
        this.natType = 'unknown';
      }
      for (const r of report.relays) relays.noteStunRtt(r.url, r.stunRttMs ?? null);
      if (this.configuredHome === null && report.preferredRelay !== null) relays.setHome(report.preferredRelay);
    }
    this.rebuildOurEndpoints();
    this.publishIfChanged(reason);
    const next = report?.udp === false ? RESTUN_NO_UDP_MS : RESTUN_MIN_MS + Math.random() * (RESTUN_MAX_MS - RESTUN_MIN_MS);
    this.discoveryTimer = this.host.clock.after(next, () => void this.discover('periodic'), { unref: true });
  }

  /** A direct path died: our mapping may have changed; re-STUN soon. */
  requestRestun(): void {
    if (this.closed) return;
    const since = this.host.clock.now() - this.lastDiscoveryStart;
    if (since >= RESTUN_ON_PATH_LOSS_MIN_MS) {
      void this.discover('path-lost');
      return;
    }
    this.discoveryTimer?.cancel();
    this.discoveryTimer = this.host.clock.after(RESTUN_ON_PATH_LOSS_MIN_MS - since, () => void this.discover('path-lost'), { unref: true });
  }

  private refreshLocalEndpoints(): void {
    const socket = this.host.socket;
    const port = socket.port;
    const out: string[] = [];
    const ifs = networkInterfaces();
    for (const [name, list] of Object.entries(ifs)) {
      if (this.excluded.has(name) || list === undefined) continue;
      for (const a of list) {
        if (a.internal || this.excludeIp(a.address)) continue;
        if (a.family === 'IPv6' && (socket.family === 4 || /^fe80:/i.test(a.address))) continue;
        const text = a.family === 'IPv6' ? `[${a.address}]:${port}` : `${a.address}:${port}`;
        if (!out.includes(text)) out.push(text);
      }
    }
    this.localEndpoints = out;
  }

  private rebuildOurEndpoints(): void {
    const list: IpPort[] = [];
    for (const s of [...this.publicEndpoints, ...this.localEndpoints]) {
      const a = parseAddr(s);
      if (a !== null && !list.some((x) => x.ip === a.ip && x.port === a.port)) list.push({ ip: a.ip, port: a.port });
    }
    this.ourEndpointList = list;
  }

  private publishIfChanged(reason: string): void {
    const info = this.info();
    const text = JSON.stringify(info);
    if (text === this.lastPublished) return;
    const first = this.lastPublished === '';
    this.lastPublished = text;
    this.host.log.info('local-endpoints', { reason, ...info });
    if (!first) this.host.endpointsChanged(this.host.clock.now());
    for (const cb of this.listeners) {
      try {
        cb(info);
      } catch (e) {
        this.host.log.warn('listener-failed', { error: (e as Error).message });
      }
    }
  }
}

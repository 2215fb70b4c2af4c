/**
 * The engine: a WireGuard device between a TUN and a bind, both handed in, driven by the
 * control plane (or `meshd engine` from a wg-quick file). It knows nothing about DWNs; the magic
 * socket can replace the plain UDP bind without the engine noticing.
 *
 *   const engine = new Engine({ tun, bind, privateKey });   // no I/O yet
 *   engine.addPeer({ publicKey, allowedIps: ['10.200.0.2/32'], endpoint: '192.0.2.7:51820' });
 *   engine.start();                                           // reads the TUN and the bind
 *   engine.peerStats();  await engine.stop();  await bind.close();  await tun.close();
 *
 * Ownership: whoever opened the TUN and the bind closes them. The constructor starts nothing;
 * `start()` starts reading both and the protocol timers; `stop()` stops reading and ends every
 * session, and leaves the TUN and the bind open for their owner to close.
 *
 * Peers may be added, updated and removed while traffic flows. `setPeers` takes the complete
 * list (a network map) and applies the difference.
 */
import { MeshdError } from '../errors.js';
import { PacketBatch } from './packet-batch.js';
import type { AeadBatch, AeadStats } from './crypto/aead-batch.js';
import type { Bind, Endpoint } from './wireguard/bind.js';
import { timerConfig } from './wireguard/constants.js';
import { Device, type DeviceCounters, type DeviceEvent, type PacketHooks, type PeerStats } from './wireguard/device.js';
import { tryParsePrefix, type IpPrefix } from '../util/prefix.js';
import type { Clock } from '../util/clock.js';
import type { LogLevel } from '../util/log.js';
import { DEFAULT_MTU } from './mtu.js';

/** What the engine needs from a TUN device (TunDevice fits; tests use in-memory ones). */
export interface EngineTun {
  /** Call onBatch with every batch of packets read (packet i at slot start + HEADROOM). */
  startReading(batch: PacketBatch, onBatch: (batch: PacketBatch) => void): void;
  stopReading(): void;
  /** Write packets start..start+count-1 (default: the whole batch). */
  writeBatch(batch: PacketBatch, start?: number, count?: number): number;
  close(): Promise<void>;
}

export interface EnginePeerConfig {
  /** Base64 (as `wg` prints it) or 32 bytes. */
  publicKey: string | Uint8Array;
  /** Prefixes routed to this peer and accepted from it, e.g. "10.200.0.2/32". */
  allowedIps?: string[];
  /** "ip:port", "[v6]:port", an Endpoint from the bind (magic socket), or null for none. */
  endpoint?: string | Endpoint | null;
  /** Seconds between keepalives, 0 = off. */
  persistentKeepalive?: number;
  /** Base64 or 32 bytes; null = none. */
  presharedKey?: string | Uint8Array | null;
}

export type EngineEvent = DeviceEvent;

/**
 * The level an engine event is logged at: what an operator must see (a handshake that gave up,
 * a peer that roamed) at warn/info, the routine protocol chatter (every handshake, every cookie)
 * at debug.
 */
export function engineEventLevel(e: EngineEvent): LogLevel {
  switch (e.type) {
    case 'handshake-gave-up':
      return 'warn';
    case 'endpoint-changed':
      return 'info';
    default:
      return 'debug';
  }
}

export interface EngineOptions {
  tun: EngineTun;
  bind: Bind;
  /** TUN MTU (padding is capped at it). Default DEFAULT_MTU (mtu.ts). */
  mtu?: number;
  privateKey?: string | Uint8Array;
  peers?: EnginePeerConfig[];
  /**
   * Multiplies every protocol timer (REKEY_AFTER_TIME …); for tests only. Default: env
   * MESHD_WG_TIMER_SCALE, else 1.
   */
  timerScale?: number;
  /** Transport AEAD (default: native batch unless MESHD_PURE_TS=1). */
  aead?: AeadBatch;
  clock?: Clock;
  onEvent?: (e: EngineEvent) => void;
  /** Packet filter hooks (see PacketHooks); also settable later with setHooks. */
  hooks?: PacketHooks | null;
  /** Packets per TUN read batch (default 128: room for a cut 64 KiB super-segment and more). */
  batchSize?: number;
  env?: NodeJS.ProcessEnv;
}

export interface EngineStats extends DeviceCounters {
  peers: number;
  /** The transport AEAD's threads and parallel batches (native: per process). */
  crypto: AeadStats;
}

function configError(msg: string): MeshdError {
  return new MeshdError('E_CONFIG_INVALID', msg);
}

/** A 32-byte key from base64 or bytes; throws E_CONFIG_INVALID. */
export function parseWgKey(k: string | Uint8Array, what: string): Uint8Array {
  if (typeof k !== 'string') {
    if (!(k instanceof Uint8Array) || k.length !== 32) throw configError(`${what} must be 32 bytes`);
    return new Uint8Array(k);
  }
  const b = Buffer.from(k, 'base64');
  if (b.length !== 32 || b.toString('base64') !== k) throw configError(`${what} is not a base64 WireGuard key`);
  return new Uint8Array(b);
}

function parsePrefixes(list: string[], what: string): IpPrefix[] {
  return list.map((s) => {
    const p = tryParsePrefix(s.trim(), { hostBits: 'mask' }); // allowed IPs: masked, as wg(8) does
    if (p === null) throw configError(`${what}: "${s}" is not an IP prefix`);
    return p;
  });
}

/** MESHD_WG_TIMER_SCALE, validated (tests shorten the protocol timers with it). */
export function timerScaleFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.MESHD_WG_TIMER_SCALE;
  if (v === undefined || v === '') return 1;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 1) throw configError(`MESHD_WG_TIMER_SCALE must be a number in (0, 1], got "${v}"`);
  return n;
}

export class Engine {
  readonly device: Device;
  private readonly tun: EngineTun;
  private readonly bind: Bind;
  private readonly readBatch: PacketBatch;
  private started = false;
  private stopped = false;

  constructor(opts: EngineOptions) {
    this.tun = opts.tun;
    this.bind = opts.bind;
    const mtu = opts.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw configError(`bad MTU ${mtu}`);
    this.readBatch = new PacketBatch(opts.batchSize ?? 128, Math.max(2048, mtu + 64));
    const scale = opts.timerScale ?? timerScaleFromEnv(opts.env ?? process.env);
    this.device = new Device({
      bind: this.bind,
      tunWrite: (batch) => {
        this.tun.writeBatch(batch, 0, batch.count);
      },
      mtu,
      timers: timerConfig(scale),
      ...(opts.aead ? { aead: opts.aead } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.hooks ? { hooks: opts.hooks } : {}),
    });
    if (opts.privateKey !== undefined) this.setPrivateKey(opts.privateKey);
    for (const p of opts.peers ?? []) this.addPeer(p);
  }

  /** Start reading the TUN and the bind, and the protocol timers. Idempotent; E_ENGINE once stopped. */
  start(): this {
    if (this.stopped) throw new MeshdError('E_ENGINE', 'the engine is stopped; make a new one');
    if (this.started) return this;
    this.started = true;
    this.bind.start((batch) => this.device.handleDatagrams(batch));
    this.tun.startReading(this.readBatch, (batch) => this.device.handleTunBatch(batch));
    this.device.start();
    return this;
  }

  setPrivateKey(key: string | Uint8Array): void {
    this.device.setPrivateKey(parseWgKey(key, 'private key'));
  }

  /** Our public key (base64), or null before setPrivateKey. */
  get publicKey(): string | null {
    const k = this.device.publicKey;
    return k === null ? null : Buffer.from(k).toString('base64');
  }

  get listenPort(): number {
    return this.bind.localPort;
  }

  private settings(cfg: EnginePeerConfig) {
    const publicKey = parseWgKey(cfg.publicKey, 'peer public key');
    let endpoint: Endpoint | null | undefined;
    if (cfg.endpoint === undefined || cfg.endpoint === null) endpoint = cfg.endpoint;
    else if (typeof cfg.endpoint === 'string') endpoint = this.bind.parseEndpoint(cfg.endpoint);
    else endpoint = cfg.endpoint;
    const ka = cfg.persistentKeepalive;
    if (ka !== undefined && (!Number.isInteger(ka) || ka < 0 || ka > 65535)) throw configError(`bad persistent keepalive ${ka}`);
    return {
      publicKey,
      ...(cfg.allowedIps !== undefined ? { allowedIps: parsePrefixes(cfg.allowedIps, 'allowed IPs') } : {}),
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(ka !== undefined ? { persistentKeepalive: ka } : {}),
      ...(cfg.presharedKey !== undefined
        ? { presharedKey: cfg.presharedKey === null ? null : parseWgKey(cfg.presharedKey, 'preshared key') }
        : {}),
    };
  }

  /** Add a peer; E_CONFIG_INVALID if it is already there or the config is malformed. */
  addPeer(cfg: EnginePeerConfig): void {
    const s = this.settings(cfg);
    if (this.device.getPeer(s.publicKey)) throw configError(`peer ${Buffer.from(s.publicKey).toString('base64')} already exists`);
    this.device.upsertPeer({ allowedIps: [], ...s });
  }

  /** Change a peer; fields left undefined keep their value. E_CONFIG_INVALID if unknown. */
  updatePeer(cfg: EnginePeerConfig): void {
    const s = this.settings(cfg);
    if (!this.device.getPeer(s.publicKey)) throw configError(`no peer ${Buffer.from(s.publicKey).toString('base64')}`);
    this.device.upsertPeer(s);
  }

  /** Remove a peer: its sessions end at once. Returns whether it existed. */
  removePeer(publicKey: string | Uint8Array): boolean {
    return this.device.removePeer(parseWgKey(publicKey, 'peer public key'));
  }

  /** Make the peer set exactly `peers`: add the new, update the known, remove the rest. */
  setPeers(peers: EnginePeerConfig[]): void {
    const wanted = new Map(peers.map((p) => [Buffer.from(parseWgKey(p.publicKey, 'peer public key')).toString('base64'), p]));
    for (const s of this.device.peerStats()) if (!wanted.has(s.publicKey)) this.removePeer(s.publicKey);
    for (const [k, p] of wanted) {
      if (this.device.getPeer(Buffer.from(k, 'base64'))) this.updatePeer(p);
      else this.addPeer(p);
    }
  }

  /** Install or remove the packet filter hooks while running. */
  setHooks(hooks: PacketHooks | null): void {
    this.device.setHooks(hooks);
  }

  peerStats(): PeerStats[] {
    return this.device.peerStats();
  }

  stats(): EngineStats {
    return { ...this.device.counters, drops: { ...this.device.counters.drops }, peers: this.device.peers.size, crypto: this.device.aead.stats() };
  }

  /**
   * Stop reading the TUN, end every session and the timers. Idempotent. The TUN and the bind
   * stay open: their owner closes them (datagrams the bind still delivers are dropped).
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.started) this.tun.stopReading();
    this.device.close();
  }
}

export type { PeerStats, DeviceCounters, PacketHooks };

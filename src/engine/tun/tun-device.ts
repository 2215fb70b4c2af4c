/**
 * A Linux TUN device (IFF_TUN|IFF_NO_PI, non-blocking) opened through the addon, read and written
 * in whole batches, with a uv_poll readiness watcher on the Node event loop. Addresses, MTU and
 * routes go through `ip`. The device is not persistent: the kernel removes it (and its routes)
 * when the fd closes, so close() and even a crash leave nothing behind; removeStaleTun covers
 * a device some other way left over.
 *
 * Packets read land at slot start + HEADROOM (room for the WireGuard header in front) with
 * TAILROOM free after them (padding and tag), as PacketBatch documents.
 *
 * Offload (default unless MESHD_NO_OFFLOAD=1, where the addon and kernel have it): the device is
 * opened with virtio headers and TSO/checksum offload, so the kernel hands over TCP (and UDP)
 * super-segments of up to 64 KiB, which the addon cuts into MTU-sized packets as it reads, and
 * takes consecutive TCP segments of a flow written in one batch as one joined frame (GRO).
 * Callers see plain IP packets either way; `offload` and the stats say what happened.
 */
import { MeshdError } from '../../errors.js';
import { errnoName, nativeErrorCode, type NativeAddon } from '../native/addon.js';
import { offloadRequested, tryLoadNative } from '../native/load.js';
import { countBatchWrite, FdBatchReader } from '../native/readiness.js';
import { HEADROOM, TAILROOM, type PacketBatch } from '../packet-batch.js';
import {
  addAddress,
  addRoute,
  checkInterfaceName,
  removeRoute,
  removeStaleTun,
  setLinkMtu,
  setLinkUp,
} from './ip-command.js';

export const DEFAULT_TUN_NAME = 'meshd0';

export interface TunStats {
  rxPackets: number;
  rxErrors: number;
  txPackets: number;
  /** Packets dropped because the device queue was full (EAGAIN). */
  txDropped: number;
  /** Packets the kernel refused (EIO before the link is up, EINVAL for a malformed packet, …). */
  txErrors: number;
  lastError: string | null;
  /** Super-segments read (offload), and the packets cut from them (counted in rxPackets too). */
  rxSuperSegments: number;
  rxCutPackets: number;
  /** Frames written (offload: one per joined run, else one per packet). */
  txFrames: number;
  /** Frames that joined two or more TCP segments (GRO), and the packets inside them. */
  txJoinedFrames: number;
  txJoinedPackets: number;
}

/** The TUN offloads in use. */
export interface TunOffload {
  /** Frames carry virtio headers (IFF_VNET_HDR). */
  vnet: boolean;
  /** TCP segmentation offload accepted (super-segments read, joined segments written). */
  tso: boolean;
  /** UDP segmentation offload accepted (Linux 6.2+). */
  uso: boolean;
}

const TUN_F_TSO4 = 0x02;
const TUN_F_USO4 = 0x20;

export interface TunOpenOptions {
  /** Interface name (default meshd0). */
  name?: string;
  /** An already loaded addon; default: load it. */
  addon?: NativeAddon | null;
  /** Segmentation offload where available. Default: on unless MESHD_NO_OFFLOAD=1 in env. */
  offload?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface TunConfig {
  mtu?: number;
  /** Addresses with prefix length, e.g. 10.99.0.1/24 or fd7a:115c::1/64. */
  addresses?: string[];
  /** Prefixes routed into the device. */
  routes?: string[];
}

export class TunDevice {
  readonly name: string;
  readonly stats: TunStats = {
    rxPackets: 0,
    rxErrors: 0,
    txPackets: 0,
    txDropped: 0,
    txErrors: 0,
    lastError: null,
    rxSuperSegments: 0,
    rxCutPackets: 0,
    txFrames: 0,
    txJoinedFrames: 0,
    txJoinedPackets: 0,
  };
  readonly offload: TunOffload;
  readonly #addon: NativeAddon;
  #fd: number;
  readonly #reader: FdBatchReader;
  readonly #result = new Int32Array(8);
  /** tunReadVnet's carry-over area (virtio headers only). */
  readonly #scratch: Uint8Array | null;
  #held = false;

  private constructor(addon: NativeAddon, fd: number, name: string, offload: TunOffload) {
    this.#addon = addon;
    this.#fd = fd;
    this.name = name;
    this.offload = offload;
    this.#scratch = offload.vnet ? new Uint8Array(addon.tunVnetScratchSize!()) : null;
    this.#reader = new FdBatchReader(addon, this.stats);
  }

  /** Create (or attach to) the TUN device. Throws E_NATIVE without the addon, E_TUN if the kernel refuses. */
  static open(options: TunOpenOptions = {}): TunDevice {
    const name = options.name ?? DEFAULT_TUN_NAME;
    checkInterfaceName(name);
    let addon = options.addon;
    if (addon === undefined) {
      const loaded = tryLoadNative();
      if (loaded.addon === null) {
        throw new MeshdError('E_NATIVE', `cannot open a TUN device: ${loaded.reason}`, {
          hint: 'build the addon with `npx node-gyp rebuild --directory=native`',
        });
      }
      addon = loaded.addon;
    }
    if (addon === null) throw new MeshdError('E_NATIVE', 'cannot open a TUN device without the native addon');
    const wantVnet =
      (options.offload ?? offloadRequested(options.env ?? process.env)) &&
      typeof addon.tunReadVnet === 'function' &&
      typeof addon.tunWriteVnet === 'function' &&
      typeof addon.tunVnetScratchSize === 'function';
    try {
      const opened = wantVnet ? addon.tunOpen(name, true) : addon.tunOpen(name);
      const vnet = opened.vnet === true;
      const bits = vnet ? (opened.offloads ?? 0) : 0;
      return new TunDevice(addon, opened.fd, opened.name, { vnet, tso: (bits & TUN_F_TSO4) !== 0, uso: (bits & TUN_F_USO4) !== 0 });
    } catch (e) {
      const code = nativeErrorCode(e);
      const hint =
        code === 'EPERM' || code === 'EACCES'
          ? 'creating a TUN device needs root or CAP_NET_ADMIN'
          : code === 'EBUSY'
            ? `another process holds ${name}; stop it, or run \`ip link del ${name}\` if it is stale`
            : code === 'ENOENT' || code === 'ENODEV'
              ? 'this system has no /dev/net/tun (load the tun module)'
              : code === 'EINVAL'
                ? `${name} exists and is not a TUN device`
                : undefined;
      throw new MeshdError('E_TUN', `cannot open TUN device ${name}: ${(e as Error).message}`, { cause: e, hint });
    }
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  #checkOpen(): number {
    if (this.#fd < 0) throw new MeshdError('E_TUN', `TUN device ${this.name} is closed`);
    return this.#fd;
  }

  /**
   * Read up to batch.capacity waiting packets, packet i at slot start + HEADROOM; sets
   * batch.count and returns it (0 when none is waiting). Never blocks.
   */
  readBatch(batch: PacketBatch): number {
    const fd = this.#checkOpen();
    const r = this.#result;
    const maxLen = batch.slotSize - HEADROOM - TAILROOM;
    const scratch = this.#scratch;
    let n: number;
    if (scratch !== null) {
      n = this.#addon.tunReadVnet!(fd, batch.buf, batch.slotSize, HEADROOM, maxLen, batch.offsets, batch.lengths, batch.capacity, r, scratch);
      this.stats.rxSuperSegments += r[4]!;
      this.stats.rxCutPackets += r[5]!;
      this.#held = r[6] !== 0;
    } else {
      n = this.#addon.fdRead(fd, batch.buf, batch.slotSize, HEADROOM, maxLen, batch.offsets, batch.lengths, batch.capacity, r);
    }
    batch.count = n;
    this.stats.rxPackets += n;
    if (r[1] !== 0) {
      this.stats.rxErrors += r[1]!;
      this.stats.lastError = errnoName(r[2]!);
    }
    return n;
  }

  /**
   * Write packets start..start+count-1 (default all). Returns how many the kernel took. With
   * offload, TCP segments may be joined, and their headers are rewritten in the batch.
   */
  writeBatch(batch: PacketBatch, start = 0, count = batch.count - start): number {
    const fd = this.#checkOpen();
    if (count <= 0) return 0;
    const r = this.#result;
    if (this.#scratch !== null) {
      const written = this.#addon.tunWriteVnet!(fd, batch.buf, batch.offsets, batch.lengths, start, count, r);
      countBatchWrite(this.stats, written, r);
      this.stats.txFrames += r[4]!;
      this.stats.txJoinedFrames += r[5]!;
      this.stats.txJoinedPackets += r[6]!;
      return written;
    }
    const written = this.#addon.fdWrite(fd, batch.buf, batch.offsets, batch.lengths, start, count, r);
    countBatchWrite(this.stats, written, r);
    this.stats.txFrames += written;
    return written;
  }

  /**
   * Whenever packets are waiting, drain them batch by batch into `batch` and call onBatch for
   * each non-empty one. onBatch must be done with the batch when it returns: it is reused.
   */
  startReading(batch: PacketBatch, onBatch: (batch: PacketBatch) => void): void {
    const fd = this.#checkOpen();
    this.#reader.start(fd, (b) => this.readBatch(b), () => this.#fd >= 0, batch, onBatch, () => this.#held);
  }

  stopReading(): void {
    this.#reader.stop();
  }

  /** Whether a reading device keeps the process alive (default true). */
  setKeepAlive(keep: boolean): void {
    this.#reader.setKeepAlive(keep);
  }

  setMtu(mtu: number): Promise<void> {
    this.#checkOpen();
    return setLinkMtu(this.name, mtu);
  }

  addAddress(cidr: string): Promise<void> {
    this.#checkOpen();
    return addAddress(this.name, cidr);
  }

  addRoute(cidr: string): Promise<void> {
    this.#checkOpen();
    return addRoute(this.name, cidr);
  }

  removeRoute(cidr: string): Promise<void> {
    this.#checkOpen();
    return removeRoute(this.name, cidr);
  }

  setUp(): Promise<void> {
    this.#checkOpen();
    return setLinkUp(this.name);
  }

  /** MTU, then addresses, then link up, then routes (routes need the link up). */
  async configure(config: TunConfig): Promise<void> {
    if (config.mtu !== undefined) await this.setMtu(config.mtu);
    for (const a of config.addresses ?? []) await this.addAddress(a);
    await this.setUp();
    for (const r of config.routes ?? []) await this.addRoute(r);
  }

  /**
   * Stop reading and close the fd, which removes the device and its routes; if the device is
   * somehow still there (made persistent, or another fd kept it), delete it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#fd < 0) return;
    this.stopReading();
    const fd = this.#fd;
    this.#fd = -1;
    this.#addon.fdClose(fd);
    await removeStaleTun(this.name);
  }
}

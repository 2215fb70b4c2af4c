/**
 * Warming the transport paths. V8 compiles a function to optimized machine code only after it
 * has run for a while; until then it runs in the interpreter. A freshly started engine carrying
 * light traffic (a ping every 10 ms) took over a thousand packets before its seal, open and
 * routing code was optimized, and each round trip meanwhile cost ≈ 0.2 ms more than later.
 *
 * A warm-up pass runs synthetic traffic between two throwaway devices, in short slices on the
 * event loop, so that real packets find that code optimized. The throwaway devices have their own
 * keys, peers, in-memory binds and counters; nothing they send leaves the process and nothing of
 * the engine's state is touched.
 *
 * Code optimized on the warm-up's objects alone is thrown away ("deoptimized") when the first
 * real packet brings the real bind and TUN types to the same call sites. So WarmUpPlan runs a
 * pass only after real packets went both ways, and a second one after real packets passed the
 * code the first pass optimized: by then V8's feedback holds the real types and the warm-up's,
 * and the code it optimizes stays.
 *
 *   const plan = new WarmUpPlan({ mtu: 1420, slotSize: 2048, aead });
 *   plan.afterBatch(rxPackets, txPackets);   // after each real batch while plan.pending
 *   plan.stop();
 */
import { randomBytes } from 'node:crypto';
import type { AeadBatch } from './crypto/aead-batch.js';
import { ADDR_SIZE, HEADROOM, PacketBatch } from './packet-batch.js';
import { AddrEndpoint } from './wireguard/addr-endpoint.js';
import type { Bind, Endpoint, ReceiveHandler } from './wireguard/bind.js';
import { Device } from './wireguard/device.js';
import { makePrefix } from '../util/prefix.js';

/** Round trips of one small packet each way per pass: about what V8 needs to optimize the paths. */
export const WARM_UP_ROUND_TRIPS = 2000;
/** Passes (see above): the second re-optimizes what the first real packets deoptimized. */
export const WARM_UP_PASSES = 2;
/** Every this many round trips, a full batch each way (the loops' batch shapes). */
const FULL_BATCH_EVERY = 25;
/** Round trips per event-loop turn, so real traffic and timers are never held up for long. */
const ROUND_TRIPS_PER_SLICE = 50;
const FULL_BATCH = 32;

/** A bind that queues what its device sends for the other bind's device (no I/O). */
class LoopBind implements Bind {
  readonly localPort = 0;
  readonly self: AddrEndpoint;
  other: LoopBind | null = null;
  /** Datagrams waiting for this bind's device. */
  readonly inbox: PacketBatch;
  #handler: ReceiveHandler | null = null;

  constructor(ip: Uint8Array, slotSize: number) {
    this.self = AddrEndpoint.fromIpPort(ip, 51820);
    this.inbox = new PacketBatch(64, slotSize);
  }

  start(handler: ReceiveHandler): void {
    this.#handler = handler;
  }

  endpointFor(addrs: Uint8Array, i: number): Endpoint {
    return AddrEndpoint.fromAddrs(addrs, i);
  }

  parseEndpoint(s: string): Endpoint {
    return AddrEndpoint.parse(s);
  }

  send(batch: PacketBatch, endpoints: ReadonlyArray<Endpoint | null>): void {
    for (let i = 0; i < batch.count; i++) if (endpoints[i] !== null) this.#queue(batch.buf, batch.offsets[i]!, batch.lengths[i]!);
  }

  sendOne(data: Uint8Array, _endpoint: Endpoint): void {
    this.#queue(data, 0, data.length);
  }

  #queue(buf: Uint8Array, off: number, len: number): void {
    const box = this.other?.inbox;
    if (box === undefined || box.count >= box.capacity || len > box.slotSize) return;
    const i = box.count++;
    const at = box.slotStart(i);
    box.buf.set(buf.subarray(off, off + len), at);
    box.offsets[i] = at;
    box.lengths[i] = len;
    box.addrs.set(this.self.addr, i * ADDR_SIZE);
  }

  /** Hand the waiting datagrams to the device; false when none waited. */
  deliver(): boolean {
    const box = this.inbox;
    if (box.count === 0 || this.#handler === null) return false;
    this.#handler(box);
    box.reset(0);
    return true;
  }

  async close(): Promise<void> {
    this.#handler = null;
  }
}

/** One side of the warm-up: a device, its bind and its address. */
interface Side {
  device: Device;
  bind: LoopBind;
  ip: Uint8Array;
}

export interface WarmUpOptions {
  /** The engine's TUN MTU (padding and packet sizes follow it). */
  mtu: number;
  /** The engine's slot size for TUN reads. */
  slotSize: number;
  /** The transport AEAD to warm (the engine's implementation). */
  aead?: AeadBatch;
  /** Small-packet round trips (default WARM_UP_ROUND_TRIPS). */
  roundTrips?: number;
}

export class DataPathWarmUp {
  readonly #a: Side;
  readonly #b: Side;
  readonly #tun: PacketBatch;
  readonly #mtu: number;
  readonly #total: number;
  #done = 0;
  #timer: NodeJS.Immediate | null = null;
  #stopped = false;

  private constructor(opts: WarmUpOptions) {
    this.#mtu = opts.mtu;
    this.#total = opts.roundTrips ?? WARM_UP_ROUND_TRIPS;
    this.#tun = new PacketBatch(FULL_BATCH, opts.slotSize);
    const side = (last: number): Side => {
      const ip = new Uint8Array([169, 254, 77, last]);
      const bind = new LoopBind(ip, opts.slotSize);
      const device = new Device({ bind, tunWrite: () => {}, mtu: opts.mtu, ...(opts.aead ? { aead: opts.aead } : {}) });
      device.setPrivateKey(new Uint8Array(randomBytes(32)));
      bind.start((b) => device.handleDatagrams(b));
      return { device, bind, ip };
    };
    this.#a = side(1);
    this.#b = side(2);
    this.#a.bind.other = this.#b.bind;
    this.#b.bind.other = this.#a.bind;
    for (const [me, them] of [
      [this.#a, this.#b],
      [this.#b, this.#a],
    ] as const) {
      me.device.upsertPeer({ publicKey: them.device.publicKey!, allowedIps: [makePrefix(them.ip, 32)], endpoint: them.bind.self });
    }
  }

  /** Build the two devices and run the warm-up in slices from the next turn of the event loop on. */
  static start(opts: WarmUpOptions): DataPathWarmUp {
    const w = new DataPathWarmUp(opts);
    w.#schedule();
    return w;
  }

  /** Build the two devices and run the whole warm-up now (tests, benchmarks). */
  static runNow(opts: WarmUpOptions): DataPathWarmUp {
    const w = new DataPathWarmUp(opts);
    while (!w.finished) w.#slice();
    return w;
  }

  /** Round trips done so far. */
  get roundTrips(): number {
    return this.#done;
  }

  get finished(): boolean {
    return this.#stopped;
  }

  /** Packets each throwaway device received and wrote to its (absent) TUN. */
  get delivered(): number {
    return this.#a.device.counters.rxPackets + this.#b.device.counters.rxPackets;
  }

  /** Packets the throwaway devices dropped (none, unless the paths misbehave). */
  get dropped(): number {
    let n = 0;
    for (const side of [this.#a, this.#b]) for (const v of Object.values(side.device.counters.drops)) n += v;
    return n;
  }

  /** Stop (idempotent): the throwaway devices are closed. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) clearImmediate(this.#timer);
    this.#timer = null;
    this.#a.device.close();
    this.#b.device.close();
  }

  #schedule(): void {
    this.#timer = setImmediate(() => {
      this.#timer = null;
      if (this.#stopped) return;
      this.#slice();
      if (!this.#stopped) this.#schedule();
    });
    // kept referenced: an unreferenced immediate waits for other I/O to wake the loop
  }

  #slice(): void {
    const end = Math.min(this.#total, this.#done + ROUND_TRIPS_PER_SLICE);
    while (this.#done < end) {
      const n = this.#done % FULL_BATCH_EVERY === FULL_BATCH_EVERY - 1 ? FULL_BATCH : 1;
      this.#send(this.#a, this.#b, n);
      this.#send(this.#b, this.#a, n);
      this.#done++;
    }
    if (this.#done >= this.#total) this.stop();
  }

  /** `n` IPv4 packets from one side's TUN to the other's, then every datagram delivered. */
  #send(from: Side, to: Side, n: number): void {
    const b = this.#tun;
    b.reset(HEADROOM);
    for (let i = 0; i < n; i++) {
      // an echo-sized packet, or (in full batches) sizes up to the MTU
      const len = n === 1 ? 84 : 84 + ((i * 997) % (this.#mtu - 84 + 1));
      const off = b.offsets[i]!;
      b.buf.fill(0, off, off + 20);
      b.buf[off] = 0x45;
      b.buf[off + 2] = len >> 8;
      b.buf[off + 3] = len & 0xff;
      b.buf[off + 8] = 64;
      b.buf[off + 9] = 1;
      b.buf.set(from.ip, off + 12);
      b.buf.set(to.ip, off + 16);
      b.lengths[i] = len;
    }
    b.count = n;
    from.device.handleTunBatch(b);
    // the first packets wait for a handshake: pump until both sides are quiet
    for (let guard = 0; guard < 8; guard++) {
      const moved = to.bind.deliver() || from.bind.deliver();
      if (!moved) break;
    }
  }
}

/**
 * When to run warm-up passes: each once real packets went both ways since the last one ended
 * (the real types are then in V8's feedback), up to `passes`.
 */
export class WarmUpPlan {
  readonly #opts: WarmUpOptions;
  readonly #passes: number;
  #run: DataPathWarmUp | null = null;
  #started = 0;
  /** Real packet counts when the last pass ended. */
  #rxMark = 0;
  #txMark = 0;
  #stopped = false;

  constructor(opts: WarmUpOptions, passes = WARM_UP_PASSES) {
    this.#opts = opts;
    this.#passes = passes;
  }

  /** More passes may run: call afterBatch after each real batch. */
  get pending(): boolean {
    return !this.#stopped && this.#started < this.#passes;
  }

  /** Passes started, and whether the last one is done. */
  get progress(): { passes: number; running: boolean } {
    return { passes: this.#started, running: this.#run !== null && !this.#run.finished };
  }

  /** After a real batch: the engine's received and sent transport packets so far. */
  afterBatch(rxPackets: number, txPackets: number): void {
    if (!this.pending) return;
    if (this.#run !== null) {
      if (!this.#run.finished) return;
      this.#run = null;
      this.#rxMark = rxPackets;
      this.#txMark = txPackets;
      return;
    }
    if (rxPackets <= this.#rxMark || txPackets <= this.#txMark) return;
    this.#started++;
    this.#run = DataPathWarmUp.start(this.#opts);
  }

  stop(): void {
    this.#stopped = true;
    this.#run?.stop();
  }
}

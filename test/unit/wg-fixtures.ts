/**
 * In-memory stand-ins for the WireGuard unit tests: a network of binds that queues datagrams
 * until `pump()` delivers them (deterministic, no reentrancy), a TUN that records what the device
 * writes, and IP packet builders.
 */
import { ADDR_SIZE, HEADROOM, PacketBatch } from '../../src/engine/packet-batch.js';
import type { Bind, Endpoint, ReceiveHandler } from '../../src/engine/wireguard/bind.js';
import { AddrEndpoint } from '../../src/engine/wireguard/addr-endpoint.js';
import { Device, type DeviceOptions } from '../../src/engine/wireguard/device.js';
import { parseIPv4, parseIPv6 } from '../../src/util/ip.js';

interface Datagram {
  from: AddrEndpoint;
  to: AddrEndpoint;
  data: Uint8Array;
}

export class MemoryNet {
  readonly binds = new Map<string, MemoryBind>();
  queue: Datagram[] = [];
  /** Return false to drop a datagram in flight. */
  filter: (d: Datagram) => boolean = () => true;
  delivered = 0;

  bind(ipPort: string): MemoryBind {
    const b = new MemoryBind(this, AddrEndpoint.parse(ipPort));
    this.binds.set(b.self.toString(), b);
    return b;
  }

  /** Deliver queued datagrams (and whatever they cause) until quiet or `max` delivered. */
  pump(max = 100_000): number {
    let n = 0;
    while (this.queue.length > 0 && n < max) {
      const batch = this.queue;
      this.queue = [];
      const byDest = new Map<string, Datagram[]>();
      for (const d of batch) {
        if (!this.filter(d)) continue;
        const k = d.to.toString();
        let l = byDest.get(k);
        if (!l) byDest.set(k, (l = []));
        l.push(d);
      }
      for (const [k, list] of byDest) {
        const b = this.binds.get(k);
        if (!b) continue;
        for (let i = 0; i < list.length; i += 64) b.deliver(list.slice(i, i + 64));
        n += list.length;
      }
    }
    this.delivered += n;
    return n;
  }
}

export class MemoryBind implements Bind {
  private handler: ReceiveHandler | null = null;
  private readonly rx = new PacketBatch(64);
  sent = 0;

  constructor(
    private readonly net: MemoryNet,
    readonly self: AddrEndpoint,
  ) {}

  get localPort(): number {
    return this.self.port;
  }

  start(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  endpointFor(addrs: Uint8Array, i: number): Endpoint {
    return AddrEndpoint.fromAddrs(addrs, i);
  }

  parseEndpoint(s: string): Endpoint {
    return AddrEndpoint.parse(s);
  }

  send(batch: PacketBatch, endpoints: ReadonlyArray<Endpoint | null>): void {
    for (let i = 0; i < batch.count; i++) {
      const ep = endpoints[i];
      if (!(ep instanceof AddrEndpoint)) continue;
      this.sendOne(batch.packet(i), ep);
    }
  }

  sendOne(data: Uint8Array, endpoint: Endpoint): void {
    if (!(endpoint instanceof AddrEndpoint)) return;
    this.sent++;
    this.net.queue.push({ from: this.self, to: endpoint, data: new Uint8Array(data) });
  }

  /** Hand raw datagrams to the device as if received. */
  deliver(list: Array<{ from: AddrEndpoint; data: Uint8Array }>): void {
    if (!this.handler) return;
    this.rx.reset(0);
    for (const d of list) {
      const i = this.rx.push(d.data, 0);
      this.rx.addrs.set(d.from.addr, i * ADDR_SIZE);
    }
    this.handler(this.rx);
  }

  closed = false;

  /** Has start() been called (and close() not)? */
  get started(): boolean {
    return this.handler !== null;
  }

  async close(): Promise<void> {
    this.handler = null;
    this.closed = true;
  }
}

/** Records every packet the device writes to the "TUN". */
export class MemoryTun {
  readonly received: Buffer[] = [];
  readonly write = (batch: PacketBatch): void => {
    for (let i = 0; i < batch.count; i++) this.received.push(Buffer.from(batch.packet(i)));
  };

  /** Feed packets to the device's send path as one TUN batch. */
  static inject(device: Device, packets: Uint8Array[]): void {
    for (let s = 0; s < packets.length; s += 64) {
      const b = new PacketBatch(64);
      b.reset(HEADROOM);
      for (const p of packets.slice(s, s + 64)) b.push(p, HEADROOM);
      device.handleTunBatch(b);
    }
  }
}

/** A minimal IPv4 packet (UDP-ish payload, header checksum not computed). */
export function ipv4Packet(src: string, dst: string, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(parseIPv4(src)!, 12);
  p.set(parseIPv4(dst)!, 16);
  p.set(payload, 20);
  return p;
}

export function ipv6Packet(src: string, dst: string, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  p[4] = payload.length >> 8;
  p[5] = payload.length & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(parseIPv6(src)!, 8);
  p.set(parseIPv6(dst)!, 24);
  p.set(payload, 40);
  return p;
}

export function makeDevice(net: MemoryNet, ipPort: string, opts: Partial<DeviceOptions> = {}): { device: Device; bind: MemoryBind; tun: MemoryTun } {
  const bind = net.bind(ipPort);
  const tun = new MemoryTun();
  const device = new Device({ bind, tunWrite: tun.write, mtu: 1420, ...opts });
  bind.start((b) => device.handleDatagrams(b));
  return { device, bind, tun };
}

/** An EngineTun in memory: `inject` plays packets read from the TUN, `written` records writes. */
export class MemoryEngineTun {
  readonly written: Buffer[] = [];
  private onBatch: ((b: PacketBatch) => void) | null = null;
  private batch: PacketBatch | null = null;
  closed = false;

  startReading(batch: PacketBatch, onBatch: (b: PacketBatch) => void): void {
    this.batch = batch;
    this.onBatch = onBatch;
  }

  stopReading(): void {
    this.onBatch = null;
  }

  get reading(): boolean {
    return this.onBatch !== null;
  }

  writeBatch(batch: PacketBatch, start = 0, count = batch.count - start): number {
    for (let i = start; i < start + count; i++) this.written.push(Buffer.from(batch.packet(i)));
    return count;
  }

  inject(packets: Uint8Array[]): void {
    if (!this.onBatch || !this.batch) return;
    for (let s = 0; s < packets.length; s += this.batch.capacity) {
      this.batch.reset(HEADROOM);
      for (const p of packets.slice(s, s + this.batch.capacity)) this.batch.push(p, HEADROOM);
      this.onBatch(this.batch);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

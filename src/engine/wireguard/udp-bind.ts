/**
 * The plain UDP bind: WireGuard straight over one BatchUdpSocket (recvmmsg/sendmmsg through the
 * addon, or node:dgram). Endpoints are AddrEndpoints; sending writes each packet's endpoint
 * address into the batch's addrs slot and hands the whole batch to the socket.
 */
import { openBatchUdpSocket, type BatchUdpOptions, type BatchUdpSocket, type UdpOffload, type UdpStats } from '../udp/batch-udp-socket.js';
import { ADDR_SIZE, PacketBatch } from '../packet-batch.js';
import { AddrEndpoint } from './addr-endpoint.js';
import type { Bind, Endpoint, ReceiveHandler } from './bind.js';

export class UdpBind implements Bind {
  private readonly rx = new PacketBatch(128);
  private readonly one = new PacketBatch(1);
  /** Sends skipped because the endpoint was not an address this bind can reach. */
  unroutable = 0;

  private constructor(private readonly socket: BatchUdpSocket) {}

  static async open(options: BatchUdpOptions = {}): Promise<UdpBind> {
    return new UdpBind(await openBatchUdpSocket(options));
  }

  /** Wrap a socket someone else opened (the bind closes it on close()). */
  static over(socket: BatchUdpSocket): UdpBind {
    return new UdpBind(socket);
  }

  get localPort(): number {
    return this.socket.port;
  }

  get kind(): string {
    return this.socket.kind;
  }

  get stats(): UdpStats {
    return this.socket.stats;
  }

  /** The UDP segmentation offloads the socket uses. */
  get offload(): UdpOffload {
    return this.socket.offload;
  }

  start(handler: ReceiveHandler): void {
    this.socket.startReceiving(this.rx, handler);
  }

  endpointFor(addrs: Uint8Array, i: number): Endpoint {
    return AddrEndpoint.fromAddrs(addrs, i);
  }

  parseEndpoint(s: string): Endpoint {
    return AddrEndpoint.parse(s);
  }

  send(batch: PacketBatch, endpoints: ReadonlyArray<Endpoint | null>): void {
    const n = batch.count;
    const addrs = batch.addrs;
    let out = 0;
    for (let i = 0; i < n; i++) {
      const ep = endpoints[i];
      if (!(ep instanceof AddrEndpoint)) {
        this.unroutable++;
        continue;
      }
      if (out !== i) {
        batch.offsets[out] = batch.offsets[i]!;
        batch.lengths[out] = batch.lengths[i]!;
      }
      addrs.set(ep.addr, out * ADDR_SIZE);
      out++;
    }
    if (out > 0) this.socket.sendBatch(batch, 0, out);
  }

  sendOne(data: Uint8Array, endpoint: Endpoint): void {
    if (!(endpoint instanceof AddrEndpoint)) {
      this.unroutable++;
      return;
    }
    const b = this.one;
    b.reset(0);
    b.push(data, 0);
    b.addrs.set(endpoint.addr, 0);
    this.socket.sendBatch(b, 0, 1);
  }

  async close(): Promise<void> {
    this.socket.stopReceiving();
    await this.socket.close();
  }
}

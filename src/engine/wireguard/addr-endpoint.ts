/**
 * An Endpoint that is one IP address and port, kept in the PacketBatch addrs layout (16-byte
 * IPv6 or IPv4-mapped address, 2-byte big-endian port) so that matching a received datagram's
 * source is an 18-byte compare and sending copies 20 bytes.
 */
import { splitHostPort } from '../../util/host-port.js';
import { ADDR_SIZE } from '../packet-batch.js';
import { MeshdError } from '../../errors.js';
import type { Endpoint } from './bind.js';
import { formatIp16, isV4MappedAt } from '../../util/ip.js';
import { parseIp } from '../../util/ip.js';

export class AddrEndpoint implements Endpoint {
  /** 20 bytes, addrs layout. */
  readonly addr: Uint8Array;
  private text: string | null = null;

  constructor(addr: Uint8Array) {
    if (addr.length < 18) throw new RangeError('endpoint address must be at least 18 bytes');
    this.addr = new Uint8Array(ADDR_SIZE);
    this.addr.set(addr.subarray(0, 18));
  }

  static fromAddrs(addrs: Uint8Array, i: number): AddrEndpoint {
    return new AddrEndpoint(addrs.subarray(i * ADDR_SIZE, i * ADDR_SIZE + ADDR_SIZE));
  }

  static fromIpPort(ip: Uint8Array, port: number): AddrEndpoint {
    const a = new Uint8Array(ADDR_SIZE);
    if (ip.length === 4) {
      a[10] = 0xff;
      a[11] = 0xff;
      a.set(ip, 12);
    } else if (ip.length === 16) {
      a.set(ip, 0);
    } else {
      throw new RangeError('ip must be 4 or 16 bytes');
    }
    a[16] = port >> 8;
    a[17] = port & 0xff;
    return new AddrEndpoint(a);
  }

  /** Parse "a.b.c.d:port" or "[v6]:port". Hostnames are not resolved here. */
  static parse(s: string): AddrEndpoint {
    const bad = (): MeshdError => new MeshdError('E_CONFIG_INVALID', `invalid endpoint "${s}" (want IP:port or [IPv6]:port)`);
    const hp = splitHostPort(s);
    const ip = hp ? parseIp(hp.host) : null;
    if (hp === null || ip === null) throw bad();
    const port = hp.port;
    return AddrEndpoint.fromIpPort(ip, port);
  }

  get isIPv4(): boolean {
    return isV4MappedAt(this.addr, 0);
  }

  /** The IP as text (dotted quad for IPv4-mapped). */
  get ip(): string {
    return formatIp16(this.addr, 0);
  }

  get port(): number {
    return (this.addr[16]! << 8) | this.addr[17]!;
  }

  matches(addrs: Uint8Array, i: number): boolean {
    const o = i * ADDR_SIZE;
    const a = this.addr;
    for (let k = 17; k >= 0; k--) if (addrs[o + k] !== a[k]) return false;
    return true;
  }

  /** A plain address learns nothing: the bind makes an endpoint for the new source. */
  roamed(): null {
    return null;
  }

  equals(other: Endpoint): boolean {
    if (other === this) return true;
    if (!(other instanceof AddrEndpoint)) return false;
    for (let k = 17; k >= 0; k--) if (other.addr[k] !== this.addr[k]) return false;
    return true;
  }

  toString(): string {
    if (this.text === null) this.text = this.isIPv4 ? `${this.ip}:${this.port}` : `[${this.ip}]:${this.port}`;
    return this.text;
  }
}

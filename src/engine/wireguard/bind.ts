/**
 * The packet transport under WireGuard ("bind", as wireguard-go calls it): batch send to an
 * opaque endpoint, batch receive with each datagram's source.
 *
 * Sources travel in the PacketBatch `addrs` layout (20 bytes per slot: 16-byte IPv6 or
 * IPv4-mapped address, 2-byte big-endian port, 2 bytes that a bind may use to tag the path, e.g.
 * a relay). The device never parses them: it asks the peer's current Endpoint whether a source
 * `matches` it, and only on a mismatch (the peer roamed) asks the bind for a new Endpoint. So a
 * magic socket can hand out one Endpoint object per peer that owns path choice (direct or relay,
 * Tailscale-style): its `matches` accepts every path of that peer, `endpointFor` maps any of them
 * back to the same object, `roamed` lets it learn a new path of its peer (so it stays the peer's
 * endpoint when the peer roams), and `send` lets the object pick the path.
 *
 * Endpoints are compared with `equals`, never by their text: `toString()` is for people and may
 * describe the path in use, which changes while the endpoint stays the same.
 */
import type { PacketBatch } from '../packet-batch.js';

export interface Endpoint {
  /** Does the source in `addrs` slot i belong to this endpoint? Called per authenticated packet. */
  matches(addrs: Uint8Array, i: number): boolean;
  /**
   * An authenticated packet of this endpoint's peer came from a source `matches` refused: the
   * peer roamed. Return the endpoint to send to from now on — this one, when it owns path choice
   * and has taken the source as a path of its peer — or null to have the bind make one for the
   * source (`Bind.endpointFor`).
   */
  roamed(addrs: Uint8Array, i: number): Endpoint | null;
  /** The same destination as `other` (a plain address by value; a path-owning endpoint by identity). */
  equals(other: Endpoint): boolean;
  /** For logs and status: "192.0.2.1:51820", "[2001:db8::1]:51820", or a path description. */
  toString(): string;
}

/** Called with each received batch; datagram i is at batch.offsets[i]. Valid only during the call. */
export type ReceiveHandler = (batch: PacketBatch) => void;

export interface Bind {
  /** The local UDP port, when there is one (0 otherwise). */
  readonly localPort: number;
  /** Start delivering datagrams to `handler`. */
  start(handler: ReceiveHandler): void;
  /** The endpoint a received datagram came from (slow path: only on roaming and handshakes). */
  endpointFor(addrs: Uint8Array, i: number): Endpoint;
  /** Parse a configured endpoint ("host:port", "[v6]:port"); throws MeshdError E_CONFIG_INVALID. */
  parseEndpoint(s: string): Endpoint;
  /**
   * Send datagrams 0..batch.count-1, datagram i to endpoints[i]. Synchronous and best effort (UDP
   * semantics): what cannot be sent now is dropped and counted by the bind.
   */
  send(batch: PacketBatch, endpoints: ReadonlyArray<Endpoint | null>): void;
  /** Send one datagram (handshakes, cookie replies). */
  sendOne(data: Uint8Array, endpoint: Endpoint): void;
  close(): Promise<void>;
}

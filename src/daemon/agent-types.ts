/** The agent's options and the status it reports (the control socket's `GET /v0/status`). */
import type { ControlClient } from '../control/control-client.js';
import type { ControlContext } from '../control/session.js';
import type { MeshDnsStatus } from '../dns/mesh-dns.js';
import type { DataPlaneStatus } from '../engine/dataplane.js';
import type { PacketFilter } from '../engine/filter/index.js';
import type { Logger } from './log.js';

export interface AgentOptions {
  ctx: ControlContext;
  log: Logger;
  /** TUN device name (default: the first free meshdN). */
  tunName?: string;
  /** Where the daemon keeps its own files (DNS state, routing journal): default the home. */
  runDir?: string;
  mtu?: number;
  /**
   * Run a relay (and STUN responder) here: `meshd up --relay`. `url` is how other nodes reach
   * it (announced in a relay record); without it the relay is announced only when it listens on
   * a specific address.
   */
  relay?: { host: string; port: number; stunPort: number; url?: string; insecureHttp?: boolean };
  /** How long `start` waits for the first network map from the DWN when there is no cache. */
  firstMapTimeoutMs?: number;
  /** The name peers see for this device (default: remembered, else the machine's host name). */
  hostname?: string;
  /** Embedded DWN listen address when this node hosts it (default: remembered, else 0.0.0.0). */
  dwnListen?: string;
  /**
   * `--accept-dns`: point the host's resolv.conf at the mesh DNS server when systemd-resolved
   * does not run (true), or leave the host's DNS alone even when it does (false). Remembered;
   * default: resolved only.
   */
  acceptDns?: boolean;
  /** Mesh DNS port (default 53; MESHD_DNS_PORT; 0: no mesh DNS). */
  dnsPort?: number;
  /** Subnet routes and exit nodes (`meshd up --advertise-routes`, `--exit-node`, …). */
  routing?: RoutingOptions;
}

export interface RoutingOptions {
  /** Subnet routes to offer (validated; used once the owner approves them). */
  advertiseRoutes: string[];
  advertiseExitNode: boolean;
  /** Masquerade traffic to subnet routes (default true). */
  snatSubnetRoutes: boolean;
  /** The exit node to use: its host name, mesh IP or DID; null: none. */
  exitNode: string | null;
  exitNodeAllowLanAccess: boolean;
}

export interface AgentRoutingStatus {
  /** What this node offers, and what of it the owner approved and is in use. */
  advertisedRoutes: string[];
  routes: string[];
  advertisesExitNode: boolean;
  /** As an exit node, this node carries IPv6 too (it had an IPv6 default route at start). */
  advertisesExitNodeIPv6: boolean;
  exitNodeApproved: boolean;
  /** The exit node asked for (`--exit-node`), and the DID in use (null: not in use). */
  exitNodeWanted: string | null;
  exitNode: string | null;
  /**
   * This host's IPv6 beyond the mesh while an exit node is in use: 'exit-node' through it,
   * 'blocked' (the exit node carries no IPv6: unreachable, so none leaks outside the tunnel);
   * null when no exit node is in use or the host has no IPv6.
   */
  exitNodeIPv6: 'exit-node' | 'blocked' | null;
  /** The last failure to apply the host's routes or firewall, or null. */
  error: string | null;
}

export interface AgentPeerStatus {
  did: string;
  hostname: string | null;
  /** The peer's mesh DNS name (`<label>.<suffix>`), null without mesh DNS. */
  dnsName: string | null;
  meshIP: string;
  meshIP6: string;
  wireguardKey: string;
  online: boolean;
  path: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  /** The 'ip:port' candidates the peer published in its endpoint record (the network map). */
  endpoints: string[];
  relay: string | null;
  latencyMs: number | null;
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
  /** WireGuard handshakes completed with the peer. */
  handshakes: number;
}

export interface AgentStatus {
  identity: { did: string; wireguardKey: string; meshIP: string | null; meshIP6: string | null };
  network: { id: string; name: string; meshCIDR: string; anchor: string; epoch: number; endpoint: string; mapHash: string; mapSource: string | null } | null;
  /** The data plane's own view; `peerKeys`: the WireGuard keys it has as peers right now. */
  dataplane: (Omit<DataPlaneStatus, 'peers'> & { peerKeys: string[] }) | null;
  control: ControlClient['stats'] | null;
  filter: ReturnType<PacketFilter['counters']> & { policyVersion: number | null };
  relayServer: { url: string; stunPort: number | null } | null;
  /** Mesh DNS: where it serves, how the host was told, its counters; null when it does not run. */
  dns: (MeshDnsStatus & { name: string | null }) | null;
  routing: AgentRoutingStatus;
  peers: AgentPeerStatus[];
}

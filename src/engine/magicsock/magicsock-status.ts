/** What the magic socket reports: its counters and its status (MagicSock.status()). */
import type { UdpImplementation, UdpOffload, UdpStats } from '../udp/batch-udp-socket.js';
import type { EndpointStatus } from './endpoint.js';
import type { RelayStatus } from './relay-set.js';
import type { StunProbe } from './netcheck.js';
import type { NatMapping } from './stun.js';

export interface MagicSockCounters {
  wgReceived: number;
  discoReceived: number;
  discoUnknownSender: number;
  discoBad: number;
  stunReceived: number;
  unknownDatagrams: number;
  relayWgReceived: number;
  relayDiscoReceived: number;
  relayUnknownPeer: number;
  directSent: number;
  relaySent: number;
  relayDropped: number;
  unroutable: number;
}

export interface MagicPeerStatus extends EndpointStatus {
  publicKey: string;
}

export interface MagicSockStatus {
  listenPort: number;
  udp: UdpImplementation;
  discoKey: string;
  publicEndpoints: string[];
  localEndpoints: string[];
  natType: NatMapping;
  /** Some STUN server answered in the last discovery (null: none asked yet). */
  udpWorks: boolean | null;
  homeRelay: string | null;
  relays: RelayStatus[];
  stun: StunProbe[];
  lastDiscovery: string | null;
  counters: MagicSockCounters;
  socket: UdpStats;
  /** The socket's UDP segmentation offloads (GSO/GRO). */
  offload: UdpOffload;
  peers: MagicPeerStatus[];
}

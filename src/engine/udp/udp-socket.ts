/** Counters and resolved options shared by both BatchUdpSocket implementations. */

export interface UdpStats {
  rxPackets: number;
  /** Datagrams longer than a batch slot, dropped. */
  rxTruncated: number;
  /** Datagrams dropped because the fallback's queue was full (dgram only). */
  rxDropped: number;
  rxErrors: number;
  txPackets: number;
  /** Packets dropped because the send queue was full. */
  txDropped: number;
  /** Packets the kernel refused (unreachable, wrong family, …). */
  txErrors: number;
  /** Code of the last error seen ('ENETUNREACH', …), or null. */
  lastError: string | null;
}

export function emptyUdpStats(): UdpStats {
  return {
    rxPackets: 0,
    rxTruncated: 0,
    rxDropped: 0,
    rxErrors: 0,
    txPackets: 0,
    txDropped: 0,
    txErrors: 0,
    lastError: null,
  };
}

export interface ResolvedUdpOptions {
  address: string;
  port: number;
  recvBufferSize: number;
  sendBufferSize: number;
}

/**
 * The one TUN MTU default of the data plane: 1280.
 *
 * - It is IPv6's minimum link MTU (RFC 8200 section 5), so every inner IPv6 packet fits without
 *   the tunnel having to fragment or send Packet Too Big, and the mesh carries IPv6 addresses.
 * - A WireGuard data message adds 32 bytes and the outer UDP/IP header 28 (IPv4) or 48 (IPv6):
 *   1280 + 80 = 1360 bytes on the wire, which fits paths that 1420 (wg-quick's default, sized for
 *   a clean 1500-byte Ethernet path) does not: PPPoE (1492), nested tunnels, mobile carriers,
 *   and the relay path, which wraps packets in TCP/TLS frames over whatever path the relay has.
 * - Tailscale chose 1280 for the same reasons. The price is ~10 % more packets for bulk TCP than
 *   1420; a wg-quick file's `MTU =` (or the agent's --mtu) sets another value.
 */
export const DEFAULT_MTU = 1280;

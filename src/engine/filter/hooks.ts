/**
 * The packet filter as the WireGuard device's per-packet hooks. The device has already checked
 * that a packet's inner source address is within the sending peer's allowed IPs (its mesh
 * addresses) before the inbound hook runs, so the filter's own source check is not repeated.
 */
import type { PacketHooks } from '../wireguard/device.js';
import type { PacketFilter } from './filter.js';
import type { SourceCheck } from './types.js';
import { Verdict } from './types.js';

const checkedByDevice: SourceCheck = () => true;

export function filterHooks(filter: PacketFilter, now: () => number = Date.now): PacketHooks {
  return {
    inbound: (buf, off, len, peer) => filter.inbound(buf, off, len, peer.publicKeyBase64, checkedByDevice, now()) === Verdict.Accept,
    outbound: (buf, off, len) => filter.outbound(buf, off, len, now()) === Verdict.Accept,
  };
}

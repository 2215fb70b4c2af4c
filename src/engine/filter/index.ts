/** The packet filter: compiled policy types, compilation, and the stateful filter. */
export * from './types.js';
export { compileFilter, parsePortRange, isWireGuardKeyBase64 } from './compile.js';
export { parsePrefix, formatPrefix, sourceCheckFromPrefixes, prefixContainsAt } from './cidr.js';
export { PacketFilter, DEFAULT_MAX_FLOWS, type PacketFilterOptions } from './filter.js';
export { PacketInfo, parsePacket } from './packet.js';

/** The mesh DNS name table of a network map: every active node (this one too) under the network's suffix. */
import type { NetworkMap } from '../control/netmap.js';
import { buildNameTable, meshSuffix, type NameTable } from '../dns/names.js';

export function nameTableFromMap(map: NetworkMap): NameTable {
  const nodes = [...(map.self ? [map.self] : []), ...map.peers].map((p) => ({ did: p.did, hostname: p.hostname, ipv4: p.meshIP, ipv6: p.meshIP6 }));
  return buildNameTable(meshSuffix(map.network.magicDNSSuffix, map.network.name), nodes, [map.network.meshCIDR, map.network.meshCIDR6]);
}

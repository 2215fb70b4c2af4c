/**
 * Mesh address assignment by the owner: the DID's hashed address, and on a collision
 * with an address already recorded, the next free one inside the network's CIDR (so no two
 * nodes ever share an address). Nodes use the address in their node record.
 */
import { MeshdError } from '../errors.js';
import { meshHostNumber, meshIPv6For, parseIpv4Cidr } from '../identity/mesh-address.js';
import { formatIp, parseIp } from './ip.js';

export interface MeshAddresses {
  meshIP: string;
  meshIP6: string;
}

/** Addresses for `did` in `cidr`, avoiding every address in `taken` (canonical text). */
export function assignMeshAddresses(did: string, cidr: string, taken: ReadonlySet<string>): MeshAddresses {
  const c = parseIpv4Cidr(cidr);
  const hostBits = 32 - c.bits;
  const span = 2 ** hostBits - 3; // hosts 2 … 2^hostBits − 2
  const first = meshHostNumber(did, hostBits);
  let meshIP: string | undefined;
  for (let i = 0; i < span; i++) {
    const host = 2 + ((first - 2 + i) % span);
    const ip = formatIp({ family: 4, value: BigInt((c.base + host) >>> 0) });
    if (!taken.has(ip)) {
      meshIP = ip;
      break;
    }
  }
  if (!meshIP) throw new MeshdError('E_CONFIG_INVALID', `the network ${cidr} has no free address left`);
  const v6 = parseIp(meshIPv6For(did))!;
  let value = v6.value;
  while (taken.has(formatIp({ family: 6, value }))) value += 1n;
  return { meshIP, meshIP6: formatIp({ family: 6, value }) };
}

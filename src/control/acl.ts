/**
 * ACL policies: parse and validate a policy file, and compile a policy against the
 * current node list into the filter rules the engine applies.
 *
 * Selectors: a DID selects the device with that DID, or — when no device has it — every device
 * that DID owns (so a member's DID selects all of that person's devices, and the owner's DID
 * its own machine); `group:NAME` the union of its members;
 * an IP or CIDR that prefix of mesh addresses; `*` everything. First matching rule wins; with no
 * policy record everything is accepted.
 */
import { MeshdError } from '../errors.js';
import { canonicalDid } from '../identity/did-jwk.js';
import { parseIp } from '../util/ip.js';
import { containsAddress, formatPrefix, hostPrefix, tryParsePrefix } from '../util/prefix.js';
import { validateRecord, type AclPolicyRecord } from './records.js';

export interface PortRange {
  first: number;
  last: number;
}

/** One side (source or destination) of a compiled rule. */
export interface CompiledMatch {
  /** `*`: matches every peer and address. */
  any: boolean;
  /** WireGuard public keys (base64) of the peers selected by DID or group. */
  peers: string[];
  /** Mesh-IP prefixes ("10.200.3.4/32", "fd0d:…/128", or CIDRs written in the policy). */
  cidrs: string[];
}

export interface CompiledRule {
  action: 'accept' | 'drop';
  /** Matched against the sending peer (its key, authenticated by WireGuard) or its inner source IP. */
  src: CompiledMatch;
  /** Matched against the packet's destination (the peer's key when the destination is a peer's mesh IP, or the address). */
  dst: CompiledMatch;
  proto: 'tcp' | 'udp' | 'icmp' | '*';
  /** null: any port. */
  srcPorts: PortRange[] | null;
  dstPorts: PortRange[] | null;
}

export interface CompiledFilter {
  /** Version of the policy record compiled, null when there is none (allow all). */
  policyVersion: number | null;
  defaultAction: 'accept' | 'drop';
  rules: CompiledRule[];
}

/** What the compiler needs to know about each active node. */
export interface AclNode {
  did: string;
  owner: string;
  wireguardKey: string;
  meshIPs: string[];
}

/** Parse and validate a policy file's text (JSON). Throws MeshdError E_ACL_INVALID. */
export function parseAclPolicy(text: string): AclPolicyRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MeshdError('E_ACL_INVALID', `invalid ACL policy: not valid JSON (${(e as Error).message})`);
  }
  try {
    return validateRecord('aclPolicy', v, 'write');
  } catch (e) {
    if (e instanceof MeshdError) throw new MeshdError('E_ACL_INVALID', `invalid ACL policy: ${e.message.replace(/^aclPolicy\.?:? ?/, '')}`);
    throw e;
  }
}

export const ALLOW_ALL: CompiledFilter = { policyVersion: null, defaultAction: 'accept', rules: [] };

/** The policy a new network starts with: every device may reach every other. */
export function initialPolicy(): AclPolicyRecord {
  return { version: 1, defaultAction: 'drop', groups: {}, rules: [{ action: 'accept', src: ['*'], dst: ['*'] }] };
}

export function parsePortSpec(s: string): PortRange {
  const [a, b] = s.split('-');
  const first = Number(a);
  return { first, last: b === undefined ? first : Number(b) };
}

function sortUnique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

function compileSide(selectors: string[], groups: Record<string, string[]>, nodes: AclNode[]): CompiledMatch {
  const peers: string[] = [];
  const cidrs: string[] = [];
  let any = false;
  const selectDid = (d: string) => {
    const c = canonicalDid(d);
    const isDevice = nodes.some((n) => n.did === c);
    for (const n of nodes) {
      if (isDevice ? n.did === c : n.owner === c) {
        peers.push(n.wireguardKey);
        for (const ip of n.meshIPs) {
          const a = typeof ip === 'string' ? parseIp(ip) : null;
          if (a) cidrs.push(formatPrefix(hostPrefix(a)));
        }
      }
    }
  };
  for (const s of selectors) {
    if (s === '*') any = true;
    else if (s.startsWith('group:')) for (const d of groups[s.slice(6)] ?? []) selectDid(d);
    else if (s.startsWith('did:')) selectDid(s);
    else {
      const c = tryParsePrefix(s, { hostBits: 'reject' });
      if (c) cidrs.push(formatPrefix(c));
    }
  }
  return any ? { any: true, peers: [], cidrs: [] } : { any: false, peers: sortUnique(peers), cidrs: sortUnique(cidrs) };
}

/** Compile `policy` for the given nodes; no policy = accept everything. */
export function compileAcl(policy: AclPolicyRecord | undefined, nodes: AclNode[]): CompiledFilter {
  if (!policy) return ALLOW_ALL;
  return {
    policyVersion: policy.version,
    defaultAction: policy.defaultAction,
    rules: policy.rules.map((r) => ({
      action: r.action,
      src: compileSide(r.src, policy.groups, nodes),
      dst: compileSide(r.dst, policy.groups, nodes),
      proto: r.proto ?? '*',
      srcPorts: r.srcPorts ? r.srcPorts.map(parsePortSpec) : null,
      dstPorts: r.dstPorts ? r.dstPorts.map(parsePortSpec) : null,
    })),
  };
}

/** A packet as the filter sees it. `srcKey` is the authenticated sending peer. */
export interface FilterPacket {
  srcKey: string;
  srcIP: string;
  dstKey?: string;
  dstIP: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'other';
  srcPort?: number;
  dstPort?: number;
}

function matchSide(m: CompiledMatch, key: string | undefined, ip: string): boolean {
  if (m.any) return true;
  if (key !== undefined && m.peers.includes(key)) return true;
  const a = typeof ip === 'string' ? parseIp(ip) : null;
  if (!a) return false;
  return m.cidrs.some((c) => {
    const p = tryParsePrefix(c, { hostBits: 'reject' });
    return p !== null && containsAddress(p, a);
  });
}

function matchPorts(ranges: PortRange[] | null, port: number | undefined): boolean {
  if (ranges === null) return true;
  return port !== undefined && ranges.some((r) => port >= r.first && port <= r.last);
}

/**
 * Reference semantics of a compiled filter (first match wins, else the default). The engine
 * may precompile for speed; it must decide the same.
 */
export function filterDecision(f: CompiledFilter, p: FilterPacket): 'accept' | 'drop' {
  for (const r of f.rules) {
    if (r.proto !== '*' && r.proto !== p.proto) continue;
    if (!matchSide(r.src, p.srcKey, p.srcIP)) continue;
    if (!matchSide(r.dst, p.dstKey, p.dstIP)) continue;
    if (!matchPorts(r.srcPorts, p.srcPort) || !matchPorts(r.dstPorts, p.dstPort)) continue;
    return r.action;
  }
  return f.defaultAction;
}

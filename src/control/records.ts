/**
 * Record contents of the wireguard-mesh protocol and their validation, applied on
 * write (strict: unknown fields refused) and on read (unknown fields dropped). DIDs are stored
 * and returned in canonical did:jwk form; IPs in canonical text.
 */
import { canonicalDid, parseDidJwk } from '../identity/did-jwk.js';
import { x25519PublicFromEd25519 } from '../identity/keys.js';
import { MeshdError } from '../errors.js';
import type { RecordKind } from './protocol.js';
import { canonicalIp, parseIp } from './ip.js';
import { formatPrefix, tryParsePrefix, type IpPrefix } from '../util/prefix.js';
import { array, boolean, integer, invalid, map, number, object, oneOf, optional, record, string, type Check, type Mode } from './validate.js';

export const OS_VALUES = ['linux', 'darwin', 'windows', 'freebsd', 'android', 'ios'] as const;
export const CAPABILITIES = ['subnet-router', 'exit-node', 'relay', 'dns'] as const;
export const ENDPOINT_SOURCES = ['stun', 'upnp', 'natpmp', 'pcp', 'static', 'local'] as const;
export const NAT_TYPES = ['endpoint-independent', 'endpoint-dependent', 'unknown'] as const;
export const NODE_STATUS = ['active', 'revoked'] as const;

export type Os = (typeof OS_VALUES)[number];
export type Capability = (typeof CAPABILITIES)[number];
export type EndpointSource = (typeof ENDPOINT_SOURCES)[number];
export type NatType = (typeof NAT_TYPES)[number];
export type NodeStatus = (typeof NODE_STATUS)[number];

export interface NetworkRecord {
  name: string;
  meshCIDR: string;
  meshCIDR6?: string;
  anchorEndpoint?: string;
  defaultRelays?: string[];
  dnsServers?: string[];
  magicDNSSuffix?: string;
  listenPort?: number;
  epoch: number;
  /**
   * Members may invite their own devices: up to `max` devices each are admitted by the owner's
   * daemon (more wait for `peer approve`), joining under the owner's invite record `invite`.
   */
  memberDevices?: { max: number; invite: string };
}

export interface NodeRecord {
  did: string;
  meshIP: string;
  meshIP6: string;
  owner: string;
  status: NodeStatus;
  addedAt: string;
  expiresAt?: string;
  /** Routes of this device the owner approved (subnet prefixes; 0.0.0.0/0: exit node). */
  approvedRoutes?: string[];
}

/** A person invited into the network (docs/DESIGN.md §4.1: a role record whose recipient is the member). */
export interface MemberRecord {
  did: string;
  status: NodeStatus;
  addedAt: string;
}

export interface NodeInfoRecord {
  hostname: string;
  os: Os;
  capabilities?: Capability[];
  /** Subnet routes this device offers to route for the mesh (used once the owner approves them). */
  routes?: string[];
  /** As an exit node (capability `exit-node`), it carries IPv6 too: it has an IPv6 uplink. */
  exitNodeIPv6?: boolean;
  version: string;
}

export interface PublicEndpoint {
  address: string;
  port: number;
  priority?: number;
  source: EndpointSource;
}

export interface EndpointRecord {
  publicEndpoints: PublicEndpoint[];
  localEndpoints: string[];
  preferredRelay?: string;
  natType: NatType;
  discoKey: string;
  updatedAt: string;
}

export interface AclRule {
  action: 'accept' | 'drop';
  src: string[];
  dst: string[];
  proto?: 'tcp' | 'udp' | 'icmp' | '*';
  srcPorts?: string[];
  dstPorts?: string[];
}

export interface AclPolicyRecord {
  version: number;
  defaultAction: 'accept' | 'drop';
  groups: Record<string, string[]>;
  rules: AclRule[];
}

export interface RelayRecord {
  url: string;
  region: string;
  regionName?: string;
  stunPort?: number;
  stunOnly?: boolean;
  latitude?: number;
  longitude?: number;
  /** TLS key pin: base64url SHA-256 of the relay certificate's SubjectPublicKeyInfo. */
  fingerprint?: string;
}

export interface NodeRequestRecord {
  did: string;
  hostname?: string;
  note?: string;
}

/**
 * The network key of one epoch for one recipient. The whole record is a JWE to that recipient
 * (and the owner), so the key itself travels as base64url inside it.
 */
export interface KeyDeliveryRecord {
  epoch: number;
  networkKey: string;
}

/**
 * An invite the owner issued (readable by the owner only). The secret itself is never stored:
 * `verifier` is a key derived from it, with which a joiner's proof is checked.
 */
export interface InviteRecord {
  /** memberDevices: the one record members' device invites hang off (no secret of its own). */
  role: 'node' | 'member' | 'memberDevices';
  expiresAt: string;
  /** How many devices may join with it; absent: any number until it expires. */
  uses?: number;
  label?: string;
  verifier: string;
  /** Who joined with it, in order (under memberDevices: with the nonce of the member's grant). */
  used: { did: string; at: string; grant?: string }[];
}

/** A device asking to join under an invite: proof = HMAC(verifier, invite id and its DID). */
export interface JoinRequestRecord {
  did: string;
  hostname?: string;
  proof: string;
  /** A member's signed grant (a member inviting its own device). */
  grant?: string;
}

export interface RecordTypes {
  network: NetworkRecord;
  node: NodeRecord;
  member: MemberRecord;
  nodeInfo: NodeInfoRecord;
  endpoint: EndpointRecord;
  aclPolicy: AclPolicyRecord;
  relay: RelayRecord;
  /** A relay a device or member proposes; used once the owner writes a `relay` for it. */
  relayProposal: RelayRecord;
  nodeRequest: NodeRequestRecord;
  keyDelivery: KeyDeliveryRecord;
  invite: InviteRecord;
  joinRequest: JoinRequestRecord;
}

// ---- field checks ----

export const did: Check<string> = (v, path) => {
  if (typeof v !== 'string') throw invalid(path, 'must be a DID string');
  try {
    x25519PublicFromEd25519(parseDidJwk(v)); // a key WireGuard can use
    return canonicalDid(v);
  } catch {
    throw invalid(path, 'is not a valid did:jwk');
  }
};

/** A prefix in a record: the length written out, no host bits. */
function recordPrefix(s: string): IpPrefix | null {
  return tryParsePrefix(s, { hostBits: 'reject', bare: 'reject' });
}

/** A prefix in canonical text with its length and no host bits; `allowDefault`: 0.0.0.0/0 too. */
function routePrefix(allowDefault: boolean): Check<string> {
  return string({
    max: 50,
    test: (s) => {
      const c = recordPrefix(s);
      return c !== null && formatPrefix(c) === s && (c.bits > 0 || (allowDefault && s === '0.0.0.0/0'));
    },
    what: allowDefault ? 'a route prefix (e.g. 192.168.1.0/24, or 0.0.0.0/0)' : 'a subnet prefix (e.g. 192.168.1.0/24)',
  });
}

const isoTime: Check<string> = string({
  max: 40,
  pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/,
  test: (s) => !Number.isNaN(Date.parse(s)),
  what: 'an ISO 8601 date-time',
});

const ipAddress: Check<string> = map(string({ max: 64, test: (s) => parseIp(s) !== null, what: 'an IP address' }), (s) => canonicalIp(s)!);
const ipv4: Check<string> = map(string({ max: 15, test: (s) => parseIp(s)?.family === 4, what: 'an IPv4 address' }), (s) => canonicalIp(s)!);
const ipv6: Check<string> = map(string({ max: 64, test: (s) => parseIp(s)?.family === 6, what: 'an IPv6 address' }), (s) => canonicalIp(s)!);

const ipv4Cidr: Check<string> = string({
  max: 18,
  test: (s) => {
    const c = recordPrefix(s);
    return c !== null && c.family === 4 && c.bits >= 8 && c.bits <= 30;
  },
  what: 'an IPv4 CIDR between /8 and /30',
});

const ipv6Cidr: Check<string> = string({
  max: 50,
  test: (s) => {
    const c = recordPrefix(s);
    return c !== null && c.family === 6 && c.bits >= 8 && c.bits <= 64;
  },
  what: 'an IPv6 CIDR between /8 and /64',
});

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname.length > 0;
  } catch {
    return false;
  }
}

const httpUrl: Check<string> = string({ min: 1, max: 2048, test: isHttpUrl, what: 'an http(s) URL' });
const hostname: Check<string> = string({ min: 1, max: 253, pattern: /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/, what: 'a host name' });
const domain: Check<string> = string({ min: 1, max: 253, pattern: /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$/, what: 'a domain name' });
const port: Check<number> = integer({ min: 1, max: 65535 });
/** A 32-byte key in its canonical text in `encoding`. */
function key32(encoding: 'base64' | 'base64url'): Check<string> {
  return string({
    max: 64,
    test: (s) => {
      const b = Buffer.from(s, encoding);
      return b.length === 32 && b.toString(encoding) === s;
    },
    what: `a ${encoding} 32-byte key`,
  });
}
const base64Key32: Check<string> = key32('base64');
const base64urlKey32: Check<string> = key32('base64url');

/** "ip:port" or "[ipv6]:port". */
const hostPort: Check<string> = string({
  max: 80,
  test: (s) => {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
    if (!m) return false;
    const a = parseIp(m[1] ?? m[2]!);
    const p = Number(m[3]);
    return a !== null && (m[1] === undefined) === (a.family === 4) && p >= 1 && p <= 65535;
  },
  what: 'an "ip:port"',
});

export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const PORT_RANGE = /^(\d{1,5})(?:-(\d{1,5}))?$/;

function isPortSpec(s: string): boolean {
  const m = PORT_RANGE.exec(s);
  if (!m) return false;
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  return a >= 0 && b <= 65535 && a <= b;
}

function isSelector(s: string): boolean {
  if (s === '*') return true;
  if (s.startsWith('group:')) return GROUP_NAME.test(s.slice(6));
  if (s.startsWith('did:')) {
    try {
      parseDidJwk(s);
      return true;
    } catch {
      return false;
    }
  }
  return tryParsePrefix(s, { hostBits: 'reject' }) !== null;
}

const selector: Check<string> = map(
  string({ min: 1, max: 2048, test: isSelector, what: 'a DID, group:NAME, IP, CIDR or *' }),
  (s) => (s.startsWith('did:') ? canonicalDid(s) : s),
);

// ---- record schemas ----

const recordIdText = string({ min: 20, max: 100, pattern: /^[A-Za-z0-9]+$/, what: 'a record id' });

const networkSchema = object({
  name: string({ min: 1, max: 64 }),
  meshCIDR: ipv4Cidr,
  meshCIDR6: optional(ipv6Cidr),
  anchorEndpoint: optional(httpUrl),
  defaultRelays: optional(array(httpUrl, { max: 16 })),
  dnsServers: optional(array(ipAddress, { max: 8 })),
  magicDNSSuffix: optional(domain),
  listenPort: optional(port),
  epoch: integer({ min: 0, max: 1_000_000 }),
  memberDevices: optional(object({ max: integer({ min: 0, max: 1000 }), invite: recordIdText })),
});

const nodeSchema = object({
  did,
  meshIP: ipv4,
  meshIP6: ipv6,
  owner: did,
  status: oneOf(NODE_STATUS),
  addedAt: isoTime,
  expiresAt: optional(isoTime),
  approvedRoutes: optional(array(routePrefix(true), { max: 65, unique: true })),
});

const memberSchema = object({
  did,
  status: oneOf(NODE_STATUS),
  addedAt: isoTime,
});

const nodeInfoSchema = object({
  hostname,
  os: oneOf(OS_VALUES),
  capabilities: optional(array(oneOf(CAPABILITIES), { max: CAPABILITIES.length, unique: true })),
  routes: optional(array(routePrefix(false), { max: 64, unique: true })),
  exitNodeIPv6: optional(boolean()),
  version: string({ min: 1, max: 64 }),
});

const publicEndpoint = object({
  address: ipAddress,
  port,
  priority: optional(integer({ min: 0, max: 1000 })),
  source: oneOf(ENDPOINT_SOURCES),
});

const endpointSchema = object({
  publicEndpoints: array(publicEndpoint, { max: 16 }),
  localEndpoints: array(hostPort, { max: 16 }),
  preferredRelay: optional(string({ min: 1, max: 256 })),
  natType: oneOf(NAT_TYPES),
  discoKey: base64Key32,
  updatedAt: isoTime,
});

const portList = array(string({ min: 1, max: 11, test: isPortSpec, what: 'a port or port range ("22", "8000-9000")' }), { min: 1, max: 64 });

const aclRule = object({
  action: oneOf(['accept', 'drop'] as const),
  src: array(selector, { min: 1, max: 256 }),
  dst: array(selector, { min: 1, max: 256 }),
  proto: optional(oneOf(['tcp', 'udp', 'icmp', '*'] as const)),
  srcPorts: optional(portList),
  dstPorts: optional(portList),
});

const aclPolicyBase = object({
  version: integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  defaultAction: optional(oneOf(['accept', 'drop'] as const)),
  groups: optional(record(string({ min: 1, max: 64, pattern: GROUP_NAME, what: 'a group name' }), array(did, { max: 1024 }), { max: 256 })),
  rules: array(aclRule, { max: 1024 }),
});

const aclPolicySchema: Check<AclPolicyRecord> = map(aclPolicyBase, (p, path) => {
  const groups = p.groups ?? {};
  p.rules.forEach((r, i) => {
    for (const s of [...r.src, ...r.dst]) {
      if (s.startsWith('group:') && !Object.prototype.hasOwnProperty.call(groups, s.slice(6))) {
        throw invalid(`${path ? `${path}.` : ''}rules[${i}]`, `names the undefined group "${s.slice(6)}"`);
      }
    }
    if ((r.srcPorts || r.dstPorts) && r.proto !== 'tcp' && r.proto !== 'udp') {
      throw invalid(`${path ? `${path}.` : ''}rules[${i}]`, 'ports need proto tcp or udp');
    }
  });
  return { version: p.version, defaultAction: p.defaultAction ?? 'drop', groups, rules: p.rules };
});

const relaySchema = object({
  url: httpUrl,
  region: string({ min: 1, max: 64 }),
  regionName: optional(string({ min: 1, max: 128 })),
  stunPort: optional(port),
  stunOnly: optional(boolean()),
  latitude: optional(number({ min: -90, max: 90 })),
  longitude: optional(number({ min: -180, max: 180 })),
  fingerprint: optional(base64urlKey32),
});

const nodeRequestSchema = object({
  did,
  hostname: optional(hostname),
  note: optional(string({ max: 256 })),
});

const keyDeliverySchema = object({
  epoch: integer({ min: 0, max: 1_000_000 }),
  networkKey: base64urlKey32,
});

const inviteSchema = object({
  role: oneOf(['node', 'member', 'memberDevices'] as const),
  expiresAt: isoTime,
  uses: optional(integer({ min: 1, max: 10_000 })),
  label: optional(string({ min: 1, max: 64 })),
  verifier: base64urlKey32,
  used: array(object({ did, at: isoTime, grant: optional(string({ min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, what: 'a grant nonce' })) }), { max: 10_000 }),
});

const joinRequestSchema = object({
  did,
  hostname: optional(hostname),
  proof: base64urlKey32,
  grant: optional(string({ min: 1, max: 1024 })),
});

const SCHEMAS: { [K in RecordKind]: Check<RecordTypes[K]> } = {
  network: networkSchema as Check<NetworkRecord>,
  node: nodeSchema as Check<NodeRecord>,
  member: memberSchema as Check<MemberRecord>,
  nodeInfo: nodeInfoSchema as Check<NodeInfoRecord>,
  endpoint: endpointSchema as Check<EndpointRecord>,
  aclPolicy: aclPolicySchema,
  relay: relaySchema as Check<RelayRecord>,
  relayProposal: relaySchema as Check<RelayRecord>,
  nodeRequest: nodeRequestSchema as Check<NodeRequestRecord>,
  keyDelivery: keyDeliverySchema as Check<KeyDeliveryRecord>,
  invite: inviteSchema as Check<InviteRecord>,
  joinRequest: joinRequestSchema as Check<JoinRequestRecord>,
};

/** Largest JSON text accepted for a record's plaintext. */
export const MAX_PLAINTEXT = 20_000;

/** Validate `value` as a record of `kind`; returns the normalised record. */
export function validateRecord<K extends RecordKind>(kind: K, value: unknown, mode: Mode): RecordTypes[K] {
  return SCHEMAS[kind](value, kind, mode);
}

/** Parse JSON text and validate it. Never throws anything but MeshdError. */
export function parseRecord<K extends RecordKind>(kind: K, text: string, mode: Mode = 'read'): RecordTypes[K] {
  if (text.length > MAX_PLAINTEXT) throw new MeshdError('E_RECORD_INVALID', `${kind}: larger than ${MAX_PLAINTEXT} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new MeshdError('E_RECORD_INVALID', `${kind}: not valid JSON`);
  }
  return validateRecord(kind, v, mode);
}

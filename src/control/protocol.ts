/**
 * The `wireguard-mesh` DWN protocol, with the smallest grants that work:
 *
 * - the owner (the tenant) writes everything except the three below;
 * - a device writes only its own `nodeInfo` and `endpoint`, as the recipient of its
 *   `network/node` record;
 * - a member writes only its own `nodeRequest`s, as the recipient of its `network/member`
 *   record;
 * - a device or a member may propose a relay (`relayProposal`, readable by the owner only);
 * - anyone may write a `joinRequest` under an invite the owner wrote; it is readable by the owner
 *   (and its author) only, and admitted only when it proves the invite's secret;
 *   relays are used only once the owner writes a `relay` record for them;
 * - devices and members read, query and subscribe, invoking their role, to the records the
 *   network map needs; nobody but the owner and the recipient reads a `keyDelivery`, nobody
 *   but the owner and the author reads a `nodeRequest` or a `relayProposal`.
 *
 * Every device is a flat `network/node` role record: dwn-sdk-js 0.5.2 has no nested roles.
 * Shapes accepted by 0.5.2: a role rule grants read, query and subscribe together; a rule set
 * with no rules leaves `$actions` out (an empty list is refused).
 */
import type { ProtocolDefinition } from '@tbd54566975/dwn-sdk-js';

/** Versioned URI of the protocol (the `.invalid` TLD can never be anyone's domain). */
export const PROTOCOL_URI = 'https://meshd.invalid/protocols/wireguard-mesh/v1';
/** Every record's data is a JWE in JSON serialisation. */
export const DATA_FORMAT = 'application/jose+json';

export const PATHS = {
  network: 'network',
  node: 'network/node',
  nodeInfo: 'network/node/nodeInfo',
  endpoint: 'network/node/endpoint',
  member: 'network/member',
  nodeRequest: 'network/member/nodeRequest',
  aclPolicy: 'network/aclPolicy',
  relay: 'network/relay',
  relayProposal: 'network/relayProposal',
  keyDelivery: 'network/keyDelivery',
  invite: 'network/invite',
  joinRequest: 'network/invite/joinRequest',
} as const;

export type RecordKind = keyof typeof PATHS;
export type ProtocolPath = (typeof PATHS)[RecordKind];

/** Kinds every device and member reads: encrypted to the network key of the current epoch. */
export const MEMBER_READABLE: ReadonlySet<RecordKind> = new Set<RecordKind>(['network', 'node', 'member', 'nodeInfo', 'endpoint', 'aclPolicy', 'relay']);

export const ROLE_NODE = PATHS.node;
export const ROLE_MEMBER = PATHS.member;

/** Largest stored record data (JWE bytes) per kind: the server refuses bigger writes. */
export const MAX_DATA_SIZE: Record<RecordKind, number> = {
  network: 16_384,
  node: 8_192,
  nodeInfo: 8_192,
  endpoint: 16_384,
  member: 8_192,
  nodeRequest: 8_192,
  // stays under the 30,000 bytes a query returns inline
  aclPolicy: 28_672,
  relay: 8_192,
  relayProposal: 8_192,
  keyDelivery: 8_192,
  invite: 8_192,
  joinRequest: 4_096,
};

const KIND_OF_PATH: ReadonlyMap<string, RecordKind> = new Map(Object.entries(PATHS).map(([k, p]) => [p, k as RecordKind]));

/** The kind of a protocol path (a lookup: every event asks, several times). */
export function kindOfPath(path: string): RecordKind | undefined {
  return KIND_OF_PATH.get(path);
}

const READ = ['read', 'query', 'subscribe'];
const nodeReads = { role: ROLE_NODE, can: READ };
const memberReads = { role: ROLE_MEMBER, can: READ };
const size = (k: RecordKind) => ({ $size: { max: MAX_DATA_SIZE[k] } });

export function protocolDefinition(): ProtocolDefinition {
  const types: ProtocolDefinition['types'] = {};
  for (const path of Object.values(PATHS)) {
    types[path.split('/').at(-1)!] = { dataFormats: [DATA_FORMAT] };
  }
  return {
    protocol: PROTOCOL_URI,
    published: false,
    types,
    structure: {
      network: {
        ...size('network'),
        $actions: [nodeReads, memberReads],
        node: {
          $role: true,
          ...size('node'),
          $actions: [nodeReads, memberReads],
          nodeInfo: {
            ...size('nodeInfo'),
            $actions: [{ who: 'recipient', of: PATHS.node, can: ['create', 'update', 'delete'] }, nodeReads, memberReads],
          },
          endpoint: {
            ...size('endpoint'),
            $actions: [{ who: 'recipient', of: PATHS.node, can: ['create', 'update', 'delete'] }, nodeReads, memberReads],
          },
        },
        member: {
          $role: true,
          ...size('member'),
          nodeRequest: {
            ...size('nodeRequest'),
            $actions: [{ who: 'recipient', of: PATHS.member, can: ['create', 'update', 'delete'] }],
          },
        },
        aclPolicy: {
          ...size('aclPolicy'),
          $actions: [nodeReads, memberReads],
        },
        relay: {
          ...size('relay'),
          $actions: [nodeReads, memberReads],
        },
        relayProposal: {
          ...size('relayProposal'),
          $actions: [
            { role: ROLE_NODE, can: ['create', 'update'] },
            { role: ROLE_MEMBER, can: ['create', 'update'] },
          ],
        },
        keyDelivery: {
          ...size('keyDelivery'),
        },
        invite: {
          ...size('invite'),
          // whoever holds an invite (its record id travels in the invite) may ask to join under it;
          // the owner's daemon admits only a request that proves the invite's secret
          joinRequest: {
            ...size('joinRequest'),
            $actions: [{ who: 'anyone', can: ['create'] }],
          },
        },
      },
    },
  };
}

/**
 * The packet filter's contracts: the owner's ACL policy as the data plane applies it.
 *
 * Three layers of the same policy:
 * - `FilterSpec`: JSON-friendly, what the control plane builds from the owner's aclPolicy after
 *   resolving DIDs and groups to WireGuard public keys and mesh addresses.
 * - `CompiledFilter`: plain data with parsed prefixes and port ranges (`compileFilter(spec)`).
 * - the `PacketFilter`'s private fast tables, built from a CompiledFilter in `setPolicy`.
 *
 * Matching semantics of one rule (all conditions must hold; first matching rule wins; no
 * matching rule → `defaultAction`):
 * - proto: 'tcp' | 'udp' | 'icmp' (ICMPv4 in IPv4 packets, ICMPv6 in IPv6 packets) | '*'.
 * - source: `srcPeers === '*'` matches every sender. Otherwise the packet matches when the
 *   sending peer's key is in `srcPeers` OR the inner source address is in `srcCidrs` (a union,
 *   like the aclPolicy's `src[]`). An address is trustworthy here because the anti-spoofing
 *   check has already tied it to the authenticated sender.
 * - destination: `dstCidrs === '*'` or the inner destination address is in `dstCidrs`.
 * - ports: `null` = any. A rule with ports matches only packets that carry ports (TCP/UDP,
 *   not a non-first fragment).
 */

export type FilterAction = 'accept' | 'drop';
export type FilterProto = 'tcp' | 'udp' | 'icmp' | '*';

/** JSON-friendly rule. Omitted fields mean "any" (see the module comment for srcPeers/srcCidrs). */
export interface FilterRuleSpec {
  action: FilterAction;
  /** WireGuard public keys (base64, 32 bytes) of the senders, or '*'. */
  srcPeers?: readonly string[] | '*';
  /**
   * Inner source prefixes: "10.200.0.0/16", "10.200.3.7" (= /32), "fd0d:e100:d3c5::/48". An
   * empty srcPeers with an empty srcCidrs matches no sender.
   */
  srcCidrs?: readonly string[];
  /** Inner destination prefixes (this node's addresses or the subnets it routes), or '*'. Empty: no destination. */
  dstCidrs?: readonly string[] | '*';
  proto?: FilterProto;
  /** "22", "8000-9000" or "*". */
  dstPorts?: readonly string[];
  srcPorts?: readonly string[];
}

export interface FilterSpec {
  /** Default 'drop': what no rule accepts is dropped. */
  defaultAction?: FilterAction;
  rules: readonly FilterRuleSpec[];
}

/**
 * A parsed prefix. Addresses are four big-endian 32-bit words stored as signed int32 (so they
 * stay small integers in V8); IPv4 uses word 0 and leaves words 1–3 zero. Host bits are zero.
 */
export interface Prefix {
  readonly family: 4 | 6;
  readonly bits: number;
  readonly addr: readonly [number, number, number, number];
  readonly mask: readonly [number, number, number, number];
}

/** Inclusive port range [lo, hi], 0 ≤ lo ≤ hi ≤ 65535. */
export type PortRange = readonly [lo: number, hi: number];

export interface CompiledRule {
  readonly action: FilterAction;
  readonly srcPeers: ReadonlySet<string> | '*';
  readonly srcCidrs: readonly Prefix[];
  readonly dstCidrs: readonly Prefix[] | '*';
  readonly proto: FilterProto;
  readonly dstPorts: readonly PortRange[] | null;
  readonly srcPorts: readonly PortRange[] | null;
}

export interface CompiledFilter {
  readonly defaultAction: FilterAction;
  readonly rules: readonly CompiledRule[];
}

/**
 * Verdicts, small integers. Only `Accept` lets a packet through; every other value names the
 * reason it was dropped.
 */
export const Verdict = {
  Accept: 0,
  /** The policy (a drop rule, or no rule and defaultAction 'drop') refused it. */
  DropAcl: 1,
  /** Inner source address is not one the sending peer may use. */
  DropSpoof: 2,
  /** Truncated, inconsistent or unparsable IP packet. */
  DropMalformed: 3,
  /** A non-first fragment whose first fragment was not accepted (or has expired). */
  DropFragment: 4,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/**
 * Is `buf[srcOffset ..]` (4 bytes for IPv4, 16 for IPv6: the inner source address of a packet
 * from one peer) an address that peer may send from (its mesh addresses and allowed IPs)?
 * Called once per inbound packet: must not allocate.
 */
export type SourceCheck = (buf: Uint8Array, srcOffset: number, version: 4 | 6) => boolean;

/** Counters for `meshd status`; a snapshot, safe to serialise. */
export interface FilterCounters {
  /** Inbound packets accepted (by policy, by a tracked flow, or as a tracked fragment). */
  accepted: number;
  /** Of `accepted`: replies to flows this node opened (and ICMP errors about them). */
  acceptedReply: number;
  aclDrop: number;
  spoof: number;
  malformed: number;
  fragment: number;
  /** Outbound packets seen (all accepted). */
  outbound: number;
  outboundMalformed: number;
  /** Live flows pushed out of the bounded flow table to make room. */
  flowEvictions: number;
}

/** Idle timeouts of tracked state, in milliseconds. */
export interface FlowTimeouts {
  tcpOpening: number;
  tcpEstablished: number;
  tcpClosing: number;
  tcpClosed: number;
  udp: number;
  icmp: number;
  fragment: number;
}

export const DEFAULT_FLOW_TIMEOUTS: Readonly<FlowTimeouts> = {
  tcpOpening: 60_000,
  tcpEstablished: 300_000,
  tcpClosing: 60_000,
  tcpClosed: 10_000,
  udp: 60_000,
  icmp: 30_000,
  fragment: 30_000,
};

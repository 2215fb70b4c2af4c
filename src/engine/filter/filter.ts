/**
 * The stateful packet filter: applied to packets arriving from peers (destination
 * side), with connection tracking so that replies to connections this node opened pass.
 *
 * inbound(), in order:
 *  1. malformed → DropMalformed;
 *  2. inner source not one the sending peer may use → DropSpoof, whatever the policy;
 *  3. non-first fragment → Accept only if its first fragment was accepted (else DropFragment);
 *  4. a reply on a flow this node opened (TCP/UDP 5-tuple, ICMP echo id), or an ICMP error
 *     about a tracked flow → Accept;
 *  5. the policy: first matching rule wins, else defaultAction. No policy = accept all.
 *
 * Tracked flows have an origin. LOCAL flows (this node sent the first packet: a TCP SYN, any UDP
 * datagram, an ICMP echo request) let replies in regardless of policy. REMOTE flows (a peer
 * opened them and the policy accepted) are recorded too, for two reasons: packets on them skip
 * the rule scan, and this node's replies on them are recognised as replies — so they can never
 * turn the flow into a LOCAL one that would outlive a policy change. Each REMOTE entry carries
 * the policy generation that accepted it; setPolicy() bumps the generation, so the next packet
 * on every REMOTE flow is checked against the new policy and dropped if it no longer allows it
 * (the re-check is lazy, O(1) at swap time, effective from the very next packet).
 *
 * TCP flows are created as LOCAL only by an outbound SYN (not by mid-stream packets, which could
 * belong to a peer-opened flow whose entry expired). Idle timeouts: DEFAULT_FLOW_TIMEOUTS.
 *
 * The hot path allocates nothing: the packet is parsed into one reused PacketInfo, the rules are
 * typed arrays, the flow table is preallocated. Not re-entrant (one filter per engine thread).
 */
import { MeshdError } from '../../errors.js';
import {
  FlowTable,
  flowMeta,
  KIND_FLOW,
  KIND_FRAG,
  ORIGIN_LOCAL,
  ORIGIN_REMOTE,
} from './flow-table.js';
import {
  FRAG_FIRST,
  FRAG_LATER,
  L4_ICMP,
  L4_TCP,
  L4_UDP,
  PacketInfo,
  parsePacket,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
} from './packet.js';
import {
  DEFAULT_FLOW_TIMEOUTS,
  Verdict,
  type CompiledFilter,
  type CompiledRule,
  type FilterCounters,
  type FlowTimeouts,
  type PortRange,
  type Prefix,
  type SourceCheck,
} from './types.js';

/** TCP states kept per flow (only to choose the idle timeout). */
const TCP_OPENING = 1;
const TCP_ESTABLISHED = 2;
const TCP_CLOSING = 3;
const TCP_CLOSED = 4;

/** Internal outcomes of the inbound stages. */
const R_POLICY = 0;
const R_REPLY = 1;
const R_DROP = 2;

export const DEFAULT_MAX_FLOWS = 32768;

export interface PacketFilterOptions {
  /** Flow-table capacity (rounded up to a power of two). Default 32768. */
  maxFlows?: number;
  timeouts?: Partial<FlowTimeouts>;
}

/** A rule in the shape the packet path reads: typed arrays, no optional fields. */
interface FastRule {
  readonly accept: boolean;
  /** 0 = any, else L4_TCP / L4_UDP / L4_ICMP. */
  readonly l4: number;
  readonly anySrc: boolean;
  readonly peers: ReadonlySet<string>;
  /** [addr, mask] pairs. */
  readonly src4: Int32Array;
  /** [a0, a1, a2, a3, m0, m1, m2, m3] per prefix. */
  readonly src6: Int32Array;
  readonly anyDst: boolean;
  readonly dst4: Int32Array;
  readonly dst6: Int32Array;
  /** [lo, hi] pairs, or null for any port. */
  readonly dstPorts: Int32Array | null;
  readonly srcPorts: Int32Array | null;
}

const EMPTY_SET: ReadonlySet<string> = new Set();

function bad(what: string): MeshdError {
  return new MeshdError('E_ACL_INVALID', `compiled filter: ${what}`);
}

function prefixArrays(list: readonly Prefix[], where: string): { v4: Int32Array; v6: Int32Array } {
  if (!Array.isArray(list)) throw bad(`${where} must be an array of prefixes`);
  const v4: number[] = [];
  const v6: number[] = [];
  for (const p of list) {
    if (p === null || typeof p !== 'object' || !Array.isArray(p.addr) || !Array.isArray(p.mask)) throw bad(`${where}: not a prefix`);
    if (p.family === 4) v4.push(p.addr[0], p.mask[0]);
    else if (p.family === 6) v6.push(...p.addr, ...p.mask);
    else throw bad(`${where}: family must be 4 or 6`);
  }
  return { v4: Int32Array.from(v4), v6: Int32Array.from(v6) };
}

function portArray(list: readonly PortRange[] | null, where: string): Int32Array | null {
  if (list === null || list === undefined) return null;
  if (!Array.isArray(list)) throw bad(`${where} must be an array of [lo, hi] or null`);
  const out = new Int32Array(list.length * 2);
  list.forEach((r, i) => {
    const [lo, hi] = r;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > 65535 || lo > hi) throw bad(`${where}: bad range ${String(r)}`);
    out[2 * i] = lo;
    out[2 * i + 1] = hi;
  });
  return out;
}

function fastRule(r: CompiledRule, i: number): FastRule {
  const where = `rule ${i}`;
  if (r.action !== 'accept' && r.action !== 'drop') throw bad(`${where}.action`);
  const l4 = r.proto === '*' ? 0 : r.proto === 'tcp' ? L4_TCP : r.proto === 'udp' ? L4_UDP : r.proto === 'icmp' ? L4_ICMP : -1;
  if (l4 < 0) throw bad(`${where}.proto`);
  const anySrc = r.srcPeers === '*';
  if (!anySrc && !(r.srcPeers instanceof Set)) throw bad(`${where}.srcPeers must be '*' or a Set`);
  const src = prefixArrays(anySrc ? [] : r.srcCidrs, `${where}.srcCidrs`);
  const anyDst = r.dstCidrs === '*';
  const dst = prefixArrays(anyDst ? [] : (r.dstCidrs as readonly Prefix[]), `${where}.dstCidrs`);
  return {
    accept: r.action === 'accept',
    l4,
    anySrc,
    peers: anySrc ? EMPTY_SET : (r.srcPeers as ReadonlySet<string>),
    src4: src.v4,
    src6: src.v6,
    anyDst,
    dst4: dst.v4,
    dst6: dst.v6,
    dstPorts: portArray(r.dstPorts, `${where}.dstPorts`),
    srcPorts: portArray(r.srcPorts, `${where}.srcPorts`),
  };
}

function in4(list: Int32Array, a: number): boolean {
  for (let i = 0; i < list.length; i += 2) if ((a & list[i + 1]!) === list[i]) return true;
  return false;
}

function in6(list: Int32Array, a0: number, a1: number, a2: number, a3: number): boolean {
  for (let i = 0; i < list.length; i += 8) {
    if (
      (a0 & list[i + 4]!) === list[i] &&
      (a1 & list[i + 5]!) === list[i + 1] &&
      (a2 & list[i + 6]!) === list[i + 2] &&
      (a3 & list[i + 7]!) === list[i + 3]
    ) {
      return true;
    }
  }
  return false;
}

function inPorts(list: Int32Array, port: number): boolean {
  for (let i = 0; i < list.length; i += 2) if (port >= list[i]! && port <= list[i + 1]!) return true;
  return false;
}

export class PacketFilter {
  private policy: CompiledFilter | null = null;
  private rules: readonly FastRule[] = [];
  private defaultAccept = true;
  /** Policy generation; REMOTE flows accepted under an older one are re-checked. */
  private gen = 1;
  private readonly pkt = new PacketInfo(true);
  private readonly flows: FlowTable;
  private readonly timeouts: FlowTimeouts;

  private nAccepted = 0;
  private nReply = 0;
  private nAcl = 0;
  private nSpoof = 0;
  private nMalformed = 0;
  private nFragment = 0;
  private nOutbound = 0;
  private nOutMalformed = 0;

  constructor(options: PacketFilterOptions = {}) {
    const max = options.maxFlows ?? DEFAULT_MAX_FLOWS;
    if (!Number.isInteger(max) || max < 1 || max > 1 << 22) throw new RangeError('maxFlows must be an integer in 1..4194304');
    this.flows = new FlowTable(max);
    this.timeouts = { ...DEFAULT_FLOW_TIMEOUTS, ...options.timeouts };
    for (const [k, v] of Object.entries(this.timeouts)) {
      if (typeof v !== 'number' || !(v > 0)) throw new RangeError(`timeouts.${k} must be a positive number of milliseconds`);
    }
  }

  /**
   * Install a policy (null = no policy = accept all). Takes effect on the next packet; flows that
   * peers opened are re-checked against it on their next packet. Calling it again with the same
   * policy also forces that re-check (cheaply, when it is the same object: treat compiled
   * filters as immutable) — do so when peers' allowed IPs change. Throws
   * MeshdError('E_ACL_INVALID') if `compiled` is not well formed (then the old policy stays).
   */
  setPolicy(compiled: CompiledFilter | null): void {
    // The same (immutable) policy again only forces the re-check.
    if (compiled !== this.policy) {
      if (compiled === null) {
        this.rules = [];
        this.defaultAccept = true;
      } else {
        if (compiled.defaultAction !== 'accept' && compiled.defaultAction !== 'drop') throw bad('defaultAction');
        if (!Array.isArray(compiled.rules)) throw bad('rules must be an array');
        this.rules = compiled.rules.map(fastRule);
        this.defaultAccept = compiled.defaultAction === 'accept';
      }
    }
    this.policy = compiled;
    this.gen = (this.gen + 1) | 0 || 1;
  }

  /** The policy in force (null = none, allow all). */
  get currentPolicy(): CompiledFilter | null {
    return this.policy;
  }

  /**
   * Judge a packet that arrived from the peer with WireGuard public key `peerKey` (base64), after
   * decryption. `peerAllowedSrc` says whether an inner source address belongs to that peer.
   * `now` is a monotonic time in milliseconds.
   */
  inbound(buf: Uint8Array, off: number, len: number, peerKey: string, peerAllowedSrc: SourceCheck, now: number): Verdict {
    const p = this.pkt;
    if (!parsePacket(buf, off, len, p)) {
      this.nMalformed++;
      return Verdict.DropMalformed;
    }
    if (!peerAllowedSrc(buf, p.srcOffset, p.version)) {
      this.nSpoof++;
      return Verdict.DropSpoof;
    }
    if (p.frag === FRAG_LATER) {
      const s = this.flows.find(flowMeta(p.version, KIND_FRAG, p.fragProto), p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, p.fragId, now);
      if (s >= 0 && (this.flows.origin(s) === ORIGIN_LOCAL || this.flows.gen(s) === this.gen)) {
        this.nAccepted++;
        return Verdict.Accept;
      }
      this.nFragment++;
      return Verdict.DropFragment;
    }
    let r: number;
    if (p.l4 === L4_TCP || p.l4 === L4_UDP) r = this.inboundFlow(p, peerKey, now);
    else if (p.l4 === L4_ICMP) r = this.inboundIcmp(p, peerKey, now);
    else r = this.evaluate(p, peerKey) ? R_POLICY : R_DROP;
    if (r === R_DROP) {
      this.nAcl++;
      return Verdict.DropAcl;
    }
    if (p.frag === FRAG_FIRST) this.trackFragment(p, r === R_REPLY ? ORIGIN_LOCAL : ORIGIN_REMOTE, now);
    this.nAccepted++;
    if (r === R_REPLY) this.nReply++;
    return Verdict.Accept;
  }

  /**
   * Note a packet this node is about to send into the tunnel (records the flows it opens).
   * Returns Accept, or DropMalformed for a packet that is not a valid IP packet.
   */
  outbound(buf: Uint8Array, off: number, len: number, now: number): Verdict {
    const p = this.pkt;
    if (!parsePacket(buf, off, len, p)) {
      this.nOutMalformed++;
      return Verdict.DropMalformed;
    }
    this.nOutbound++;
    if (p.frag === FRAG_LATER) return Verdict.Accept;
    const flows = this.flows;
    if (p.l4 === L4_TCP || p.l4 === L4_UDP) {
      const meta = flowMeta(p.version, KIND_FLOW, p.l4);
      const ports = (p.srcPort << 16) | p.dstPort;
      const s = flows.find(meta, p.s0, p.s1, p.s2, p.s3, p.d0, p.d1, p.d2, p.d3, ports, now);
      if (s >= 0) {
        this.refresh(s, p, flows.origin(s) === ORIGIN_LOCAL, now);
      } else if (p.l4 === L4_UDP || (p.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
        const n = flows.insert(meta, p.s0, p.s1, p.s2, p.s3, p.d0, p.d1, p.d2, p.d3, ports, now, 0);
        flows.setOrigin(n, ORIGIN_LOCAL);
        if (p.l4 === L4_TCP) {
          flows.setState(n, TCP_OPENING);
          flows.setExpiry(n, now + this.timeouts.tcpOpening);
        } else {
          flows.setExpiry(n, now + this.timeouts.udp);
        }
      }
    } else if (p.l4 === L4_ICMP && p.isEchoRequest) {
      const meta = flowMeta(p.version, KIND_FLOW, L4_ICMP);
      const ports = p.icmpId << 16;
      let s = flows.find(meta, p.s0, p.s1, p.s2, p.s3, p.d0, p.d1, p.d2, p.d3, ports, now);
      if (s < 0) {
        s = flows.insert(meta, p.s0, p.s1, p.s2, p.s3, p.d0, p.d1, p.d2, p.d3, ports, now, 0);
        flows.setOrigin(s, ORIGIN_LOCAL);
      }
      flows.setExpiry(s, now + this.timeouts.icmp);
    }
    return Verdict.Accept;
  }

  /** A snapshot of the counters. */
  counters(): FilterCounters {
    return {
      accepted: this.nAccepted,
      acceptedReply: this.nReply,
      aclDrop: this.nAcl,
      spoof: this.nSpoof,
      malformed: this.nMalformed,
      fragment: this.nFragment,
      outbound: this.nOutbound,
      outboundMalformed: this.nOutMalformed,
      flowEvictions: this.flows.evictions,
    };
  }

  /** Live tracked flows and fragments (walks the table: for status). */
  trackedFlows(now: number): number {
    return this.flows.liveCount(now);
  }

  /** Forget all tracked state (replies to earlier connections are then judged by the policy). */
  clearTracking(): void {
    this.flows.clear();
  }

  /** TCP/UDP from a peer: tracked flow, else policy (and track what it accepts). */
  private inboundFlow(p: PacketInfo, peerKey: string, now: number): number {
    const flows = this.flows;
    const meta = flowMeta(p.version, KIND_FLOW, p.l4);
    const ports = (p.dstPort << 16) | p.srcPort;
    const s = flows.find(meta, p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, ports, now);
    if (s >= 0) {
      if (flows.origin(s) === ORIGIN_LOCAL) {
        this.refresh(s, p, false, now);
        return R_REPLY;
      }
      if (flows.gen(s) !== this.gen) {
        if (!this.evaluate(p, peerKey)) return R_DROP;
        flows.setGen(s, this.gen);
      }
      this.refresh(s, p, true, now);
      return R_POLICY;
    }
    if (!this.evaluate(p, peerKey)) return R_DROP;
    const flags = p.tcpFlags;
    if (p.l4 === L4_TCP && (flags & TCP_RST) !== 0) return R_POLICY; // nothing to track
    const n = flows.insert(meta, p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, ports, now, 0);
    flows.setOrigin(n, ORIGIN_REMOTE);
    flows.setGen(n, this.gen);
    if (p.l4 === L4_TCP) {
      const st = (flags & TCP_FIN) !== 0 ? TCP_CLOSING : (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN ? TCP_OPENING : TCP_ESTABLISHED;
      flows.setState(n, st);
      flows.setExpiry(n, now + this.tcpTimeout(st));
    } else {
      flows.setExpiry(n, now + this.timeouts.udp);
    }
    return R_POLICY;
  }

  /** ICMP from a peer: echo reply to our request, error about a tracked flow, else policy. */
  private inboundIcmp(p: PacketInfo, peerKey: string, now: number): number {
    const flows = this.flows;
    if (p.isEchoReply) {
      const s = flows.find(flowMeta(p.version, KIND_FLOW, L4_ICMP), p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, p.icmpId << 16, now);
      if (s >= 0) {
        flows.setExpiry(s, now + this.timeouts.icmp);
        return R_REPLY;
      }
    } else if (p.hasInner) {
      // The inner packet is one this node sent: its source is our side of the flow.
      const q = p.inner!;
      const isFlow = q.l4 === L4_TCP || q.l4 === L4_UDP;
      if (isFlow || (q.l4 === L4_ICMP && q.isEchoRequest)) {
        const ports = isFlow ? (q.srcPort << 16) | q.dstPort : q.icmpId << 16;
        const s = flows.find(flowMeta(q.version, KIND_FLOW, q.l4), q.s0, q.s1, q.s2, q.s3, q.d0, q.d1, q.d2, q.d3, ports, now);
        if (s >= 0 && (flows.origin(s) === ORIGIN_LOCAL || flows.gen(s) === this.gen)) return R_REPLY;
      }
    }
    return this.evaluate(p, peerKey) ? R_POLICY : R_DROP;
  }

  private trackFragment(p: PacketInfo, origin: number, now: number): void {
    const flows = this.flows;
    const meta = flowMeta(p.version, KIND_FRAG, p.fragProto);
    let s = flows.find(meta, p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, p.fragId, now);
    if (s < 0) s = flows.insert(meta, p.d0, p.d1, p.d2, p.d3, p.s0, p.s1, p.s2, p.s3, p.fragId, now, 0);
    flows.setOrigin(s, origin);
    flows.setGen(s, this.gen);
    flows.setExpiry(s, now + this.timeouts.fragment);
  }

  private tcpTimeout(st: number): number {
    const t = this.timeouts;
    return st === TCP_ESTABLISHED ? t.tcpEstablished : st === TCP_OPENING ? t.tcpOpening : st === TCP_CLOSING ? t.tcpClosing : t.tcpClosed;
  }

  /** A packet on tracked flow `s`; `fromInitiator` = it travels in the flow's opening direction. */
  private refresh(s: number, p: PacketInfo, fromInitiator: boolean, now: number): void {
    const flows = this.flows;
    if (p.l4 !== L4_TCP) {
      flows.setExpiry(s, now + this.timeouts.udp);
      return;
    }
    const flags = p.tcpFlags;
    let st = flows.state(s);
    if ((flags & TCP_RST) !== 0) st = TCP_CLOSED;
    else if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && fromInitiator && st >= TCP_CLOSING) st = TCP_OPENING; // port reuse
    else if ((flags & TCP_FIN) !== 0) {
      if (st !== TCP_CLOSED) st = TCP_CLOSING;
    } else if (st === TCP_OPENING && (flags & TCP_ACK) !== 0 && !fromInitiator) st = TCP_ESTABLISHED;
    flows.setState(s, st);
    flows.setExpiry(s, now + this.tcpTimeout(st));
  }

  /** First matching rule's action, else the default. */
  private evaluate(p: PacketInfo, peerKey: string): boolean {
    const rules = this.rules;
    const v4 = p.version === 4;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.l4 !== 0 && r.l4 !== p.l4) continue;
      if (r.dstPorts !== null && (!p.hasPorts || !inPorts(r.dstPorts, p.dstPort))) continue;
      if (r.srcPorts !== null && (!p.hasPorts || !inPorts(r.srcPorts, p.srcPort))) continue;
      if (!r.anyDst && !(v4 ? in4(r.dst4, p.d0) : in6(r.dst6, p.d0, p.d1, p.d2, p.d3))) continue;
      if (!r.anySrc && !r.peers.has(peerKey) && !(v4 ? in4(r.src4, p.s0) : in6(r.src6, p.s0, p.s1, p.s2, p.s3))) continue;
      return r.accept;
    }
    return this.defaultAccept;
  }
}

/**
 * Property tests: the filter never throws on arbitrary bytes, and on random policies and packets
 * it agrees with a naive reference matcher of the ACL semantics (strings, node:net BlockList).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { compileFilter } from '../../src/engine/filter/compile.js';
import { sourceCheckFromPrefixes } from '../../src/engine/filter/cidr.js';
import { PacketFilter } from '../../src/engine/filter/filter.js';
import { craftEcho, craftPacket, craftTcp, craftUdp } from '../helpers/craft.js';
import { Verdict, type FilterRuleSpec, type FilterSpec } from '../../src/engine/filter/types.js';

const VERDICTS = new Set<number>(Object.values(Verdict));

test('property: inbound and outbound return a verdict for any bytes, never throw', () => {
  const key = Buffer.alloc(32, 9).toString('base64');
  const anySource = sourceCheckFromPrefixes(['0.0.0.0/0', '::/0']);
  const filters = [new PacketFilter({ maxFlows: 256 }), new PacketFilter({ maxFlows: 256 })];
  filters[1]!.setPolicy(compileFilter({ rules: [{ action: 'accept', proto: 'tcp', dstPorts: ['1-1000'] }] }));
  // Bias towards bytes that look like IP packets.
  const packetish = fc
    .tuple(fc.constantFrom(0x45, 0x46, 0x4f, 0x60, 0x61, 0x00), fc.uint8Array({ maxLength: 120 }))
    .map(([b0, rest]) => Uint8Array.from([b0, ...rest]));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }), packetish), fc.nat(4), fc.nat(1), fc.integer({ min: 0, max: 1e9 }), (bytes, trim, which, now) => {
      const f = filters[which]!;
      const len = Math.max(0, bytes.length - trim);
      const v1 = f.outbound(bytes, 0, len, now);
      const v2 = f.inbound(bytes, 0, len, key, anySource, now);
      assert.ok(VERDICTS.has(v1) && VERDICTS.has(v2));
      assert.ok(v1 === Verdict.Accept || v1 === Verdict.DropMalformed);
    }),
    { numRuns: 4000 },
  );
  const c = filters[0]!.counters();
  assert.ok(c.malformed > 0 && c.accepted + c.malformed + c.fragment + c.spoof + c.aclDrop > 0);
});

// ---- a small random mesh ----------------------------------------------------------------------

interface Peer {
  key: string;
  v4: string;
  v6: string;
  /** A subnet the peer routes (its allowed IPs include it). */
  sub4: string;
  sub6: string;
}

const PEERS: Peer[] = [0, 1, 2, 3].map((i) => ({
  key: Buffer.alloc(32, 0x40 + i).toString('base64'),
  v4: `10.200.0.${10 + i}`,
  v6: `fd0d:e100:d3c5::${(0x10 + i).toString(16)}`,
  sub4: `192.168.${i}.0/24`,
  sub6: `fd00:${i}::/64`,
}));
const CHECKS = PEERS.map((p) => sourceCheckFromPrefixes([p.v4, p.v6, p.sub4, p.sub6]));

const B_ADDRS4 = ['10.200.0.2', '172.16.0.1', '172.16.0.200'];
const B_ADDRS6 = ['fd0d:e100:d3c5::2', 'fd99::1', 'fd99::8000:0:0:1'];

const CIDRS = [
  '10.200.0.0/16', '10.200.0.10/31', '10.200.0.12', '10.200.0.2', '192.168.1.0/24', '192.168.0.0/16', '192.168.2.128/25',
  '0.0.0.0/0', '172.16.0.0/25', '172.16.0.0/24',
  'fd0d:e100:d3c5::/48', 'fd0d:e100:d3c5::10/127', 'fd0d:e100:d3c5::2', 'fd00:1::/64', 'fd00::/16', '::/0', 'fd99::/64',
  'fd99::8000:0:0:0/65',
];
const PORT_VALUES = [0, 1, 21, 22, 23, 53, 80, 443, 1024, 5000, 8000, 9000, 65535];

const portSpec = fc.oneof(
  fc.constantFrom(...PORT_VALUES).map(String),
  fc.tuple(fc.constantFrom(...PORT_VALUES), fc.constantFrom(...PORT_VALUES)).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
  fc.constant('*'),
);

const ruleArb: fc.Arbitrary<FilterRuleSpec> = fc
  .record(
    {
      action: fc.constantFrom('accept', 'drop') as fc.Arbitrary<'accept' | 'drop'>,
      srcPeers: fc.oneof(fc.constant('*' as const), fc.subarray(PEERS.map((p) => p.key))),
      srcCidrs: fc.subarray(CIDRS, { maxLength: 3 }),
      dstCidrs: fc.oneof(fc.constant('*' as const), fc.subarray(CIDRS, { maxLength: 3 })),
      proto: fc.constantFrom('tcp', 'udp', 'icmp', '*') as fc.Arbitrary<'tcp' | 'udp' | 'icmp' | '*'>,
      dstPorts: fc.array(portSpec, { minLength: 1, maxLength: 3 }),
      srcPorts: fc.array(portSpec, { minLength: 1, maxLength: 2 }),
    },
    { requiredKeys: ['action'] },
  )
  .map((r) => (r.proto === 'icmp' ? { ...r, dstPorts: undefined, srcPorts: undefined } : r))
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as FilterRuleSpec);

const specArb: fc.Arbitrary<FilterSpec> = fc.record(
  { defaultAction: fc.constantFrom('accept', 'drop') as fc.Arbitrary<'accept' | 'drop'>, rules: fc.array(ruleArb, { maxLength: 8 }) },
  { requiredKeys: ['rules'] },
);

interface Pkt {
  peer: number;
  six: boolean;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'gre';
  sport: number;
  dport: number;
  flags: number;
}

function hostIn(subnet: string, n: number): string {
  const base = subnet.split('/')[0]!;
  return base.includes(':') ? base.replace('::', `::${(n & 0xffff).toString(16)}`) : base.replace(/\.0$/, `.${n & 255}`);
}

const portArb = fc.oneof(fc.constantFrom(...PORT_VALUES), fc.integer({ min: 0, max: 65535 }));
const pktArb: fc.Arbitrary<Pkt> = fc
  .record({
    peer: fc.nat(PEERS.length - 1),
    six: fc.boolean(),
    fromSubnet: fc.boolean(),
    host: fc.nat(255),
    dstIdx: fc.nat(2),
    proto: fc.constantFrom('tcp', 'udp', 'icmp', 'gre') as fc.Arbitrary<Pkt['proto']>,
    sport: portArb,
    dport: portArb,
    flags: fc.constantFrom(0x02, 0x10, 0x12, 0x18, 0x11, 0x04),
  })
  .map((r) => {
    const p = PEERS[r.peer]!;
    const src = r.fromSubnet ? hostIn(r.six ? p.sub6 : p.sub4, r.host) : r.six ? p.v6 : p.v4;
    const dst = (r.six ? B_ADDRS6 : B_ADDRS4)[r.dstIdx]!;
    return { peer: r.peer, six: r.six, src, dst, proto: r.proto, sport: r.sport, dport: r.dport, flags: r.flags };
  });

function build(p: Pkt): Buffer {
  switch (p.proto) {
    case 'tcp':
      return craftTcp(p.src, p.dst, p.sport, p.dport, p.flags);
    case 'udp':
      return craftUdp(p.src, p.dst, p.sport, p.dport);
    case 'icmp':
      return craftEcho(p.src, p.dst, 'request', p.sport);
    default:
      return craftPacket({ src: p.src, dst: p.dst, proto: 47, payload: Buffer.alloc(4) });
  }
}

function inCidrs(cidrs: readonly string[], addr: string): boolean {
  const bl = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    const six = isIPv6(net!);
    // A prefix of one family never matches an address of the other (BlockList would match
    // IPv4 addresses against IPv6 rules as IPv4-mapped addresses).
    if (six !== isIPv6(addr)) continue;
    bl.addSubnet(net!, bits === undefined ? (six ? 128 : 32) : Number(bits), six ? 'ipv6' : 'ipv4');
  }
  return bl.check(addr, isIPv6(addr) ? 'ipv6' : 'ipv4');
}

function inPorts(ports: readonly string[], port: number): boolean {
  return ports.some((s) => {
    if (s === '*') return true;
    const [lo, hi] = s.split('-').map(Number);
    return port >= lo! && port <= (hi ?? lo)!;
  });
}

/** The ACL semantics read literally: first matching rule wins, else defaultAction (drop). */
function reference(spec: FilterSpec, p: Pkt): boolean {
  const key = PEERS[p.peer]!.key;
  for (const r of spec.rules) {
    const proto = r.proto ?? '*';
    if (proto !== '*' && proto !== p.proto) continue;
    const hasPorts = p.proto === 'tcp' || p.proto === 'udp';
    if (r.dstPorts && !(hasPorts ? inPorts(r.dstPorts, p.dport) : r.dstPorts.includes('*'))) continue;
    if (r.srcPorts && !(hasPorts ? inPorts(r.srcPorts, p.sport) : r.srcPorts.includes('*'))) continue;
    if (r.dstCidrs !== undefined && r.dstCidrs !== '*' && !inCidrs(r.dstCidrs, p.dst)) continue;
    const anySrc = r.srcPeers === '*' || (r.srcPeers === undefined && r.srcCidrs === undefined);
    if (!anySrc && !((r.srcPeers as string[] | undefined)?.includes(key) ?? false) && !inCidrs(r.srcCidrs ?? [], p.src)) continue;
    return r.action === 'accept';
  }
  return (spec.defaultAction ?? 'drop') === 'accept';
}

test('property: random policies agree with the naive reference matcher', () => {
  const seen = { accept: 0, drop: 0, byRule: 0 };
  fc.assert(
    fc.property(specArb, fc.array(pktArb, { minLength: 1, maxLength: 25 }), (spec, pkts) => {
      const f = new PacketFilter({ maxFlows: 1024 });
      f.setPolicy(compileFilter(spec));
      for (const p of pkts) {
        const b = build(p);
        const v = f.inbound(b, 0, b.length, PEERS[p.peer]!.key, CHECKS[p.peer]!, 1000);
        const want = reference(spec, p) ? Verdict.Accept : Verdict.DropAcl;
        if (v !== want) assert.fail(`verdict ${v}, reference ${want}\npacket ${JSON.stringify(p)}\nspec ${JSON.stringify(spec)}`);
        if (v === Verdict.Accept) seen.accept++;
        else seen.drop++;
        if ((v === Verdict.Accept) !== (spec.defaultAction === 'accept')) seen.byRule++;
      }
    }),
    { numRuns: 600 },
  );
  // The generators reach both outcomes, and rules (not just the default) decide many packets.
  const total = seen.accept + seen.drop;
  assert.ok(seen.accept > total / 10 && seen.drop > total / 10 && seen.byRule > total / 10, JSON.stringify(seen));
});

test('property: after a policy change, verdicts on earlier accepted flows match the new policy', () => {
  fc.assert(
    fc.property(specArb, specArb, fc.array(pktArb, { minLength: 1, maxLength: 15 }), (spec1, spec2, pkts) => {
      const f = new PacketFilter({ maxFlows: 1024 });
      f.setPolicy(compileFilter(spec1));
      for (const p of pkts) {
        const b = build(p);
        if (f.inbound(b, 0, b.length, PEERS[p.peer]!.key, CHECKS[p.peer]!, 1000) !== Verdict.Accept) continue;
        // This node answers what it accepted (its replies must not count as flows it opened).
        const back = build({ ...p, src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, flags: p.flags === 0x02 ? 0x12 : 0x10 });
        f.outbound(back, 0, back.length, 1001);
      }
      f.setPolicy(compileFilter(spec2));
      for (const p of pkts) {
        if (p.proto === 'icmp') continue; // echo requests are not tracked either way
        const b = build({ ...p, flags: 0x10 });
        const v = f.inbound(b, 0, b.length, PEERS[p.peer]!.key, CHECKS[p.peer]!, 1002);
        const want = reference(spec2, { ...p, flags: 0x10 }) ? Verdict.Accept : Verdict.DropAcl;
        if (v !== want) assert.fail(`verdict ${v}, reference ${want}\npacket ${JSON.stringify(p)}`);
      }
    }),
    { numRuns: 300 },
  );
});

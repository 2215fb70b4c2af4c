/**
 * The filter's behaviour on real packet bytes: policy matching, connection tracking of flows
 * this node opened, policy changes, anti-spoofing — in IPv4 and IPv6.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compileFilter } from '../../src/engine/filter/compile.js';
import { sourceCheckFromPrefixes } from '../../src/engine/filter/cidr.js';
import { PacketFilter } from '../../src/engine/filter/filter.js';
import { craftEcho, craftIcmpError, craftPacket, craftTcp, craftUdp, fragmentPacket } from '../helpers/craft.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/engine/filter/packet.js';
import { Verdict, type FilterSpec, type SourceCheck } from '../../src/engine/filter/types.js';

const SYN = TCP_SYN;
const SYNACK = TCP_SYN | TCP_ACK;
const ACK = TCP_ACK;
const DATA = TCP_ACK | TCP_PSH;

interface Node {
  key: string;
  ip: string;
  check: SourceCheck;
}

/** One address family's view of the mesh: B is this node; A1, A2 are group A; C is not. */
function mesh(six: boolean) {
  const ip = (n: number): string => (six ? `fd0d:e100:d3c5::${n.toString(16)}` : `10.200.0.${n}`);
  const node = (n: number, extra: string[] = []): Node => {
    const addr = ip(n);
    return { key: randomBytes(32).toString('base64'), ip: addr, check: sourceCheckFromPrefixes([addr, ...extra]) };
  };
  const B = ip(2);
  return { six, B, A1: node(0x11), A2: node(0x12), C: node(0x13, [six ? 'fd00:c::/64' : '192.168.13.0/24']), ip };
}

type Mesh = ReturnType<typeof mesh>;

/** spec for "only tcp/22 from group A's peers to host B" */
function sshFromA(m: Mesh): FilterSpec {
  return {
    defaultAction: 'drop',
    rules: [{ action: 'accept', srcPeers: [m.A1.key, m.A2.key], dstCidrs: [m.B], proto: 'tcp', dstPorts: ['22'] }],
  };
}

function harness(spec: FilterSpec | null) {
  const f = new PacketFilter();
  if (spec) f.setPolicy(compileFilter(spec));
  let now = 1_000_000;
  return {
    f,
    advance(ms: number) {
      now += ms;
    },
    /** Packet from peer `from` into this node. */
    in(from: Node, pkt: Uint8Array): number {
      return f.inbound(pkt, 0, pkt.length, from.key, from.check, now);
    },
    out(pkt: Uint8Array): number {
      return f.outbound(pkt, 0, pkt.length, now);
    },
  };
}

for (const six of [false, true]) {
  const fam = six ? 'IPv6' : 'IPv4';
  describe(`${fam}: only tcp/22 from group A to B`, () => {
    test('ping from A dropped, tcp/80 dropped, tcp/22 accepted; a peer outside A is dropped', () => {
      const m = mesh(six);
      const h = harness(sshFromA(m));
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'request', 1)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 80, SYN)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 40000, 22)), Verdict.DropAcl, 'udp/22 is not tcp/22');
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, SYN)), Verdict.Accept);
      assert.equal(h.in(m.A2, craftTcp(m.A2.ip, m.B, 40000, 22, SYN)), Verdict.Accept);
      assert.equal(h.in(m.C, craftTcp(m.C.ip, m.B, 40000, 22, SYN)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.ip(0x99), 40000, 22, SYN)), Verdict.DropAcl, 'not to B');
      const c = h.f.counters();
      assert.equal(c.accepted, 2);
      assert.equal(c.aclDrop, 5);
      assert.equal(c.acceptedReply, 0);
    });

    test("B's outbound connection to A:5000 lets replies in; a new inbound to 5000 is dropped", () => {
      const m = mesh(six);
      const h = harness(sshFromA(m));
      assert.equal(h.out(craftTcp(m.B, m.A1.ip, 41000, 5000, SYN)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41000, SYNACK)), Verdict.Accept);
      h.out(craftTcp(m.B, m.A1.ip, 41000, 5000, ACK));
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41000, DATA, Buffer.from('hello'))), Verdict.Accept);
      assert.equal(h.f.counters().acceptedReply, 2);
      // New connections towards B are judged by the policy.
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 41000, 5000, SYN)), Verdict.DropAcl, 'new inbound to 5000');
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41001, SYN)), Verdict.DropAcl, 'other local port');
      // The same reply tuple from another peer is a spoof (C may not use A1's address) ...
      assert.equal(h.in(m.C, craftTcp(m.A1.ip, m.B, 5000, 41000, DATA)), Verdict.DropSpoof);
      // ... and from C's own address it is not a reply.
      assert.equal(h.in(m.C, craftTcp(m.C.ip, m.B, 5000, 41000, DATA)), Verdict.DropAcl);
    });

    test('outbound UDP and ICMP echo: replies pass until the flow idles out', () => {
      const m = mesh(six);
      const h = harness(sshFromA(m));
      h.out(craftUdp(m.B, m.A1.ip, 53000, 53));
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 53, 53000)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 54, 53000)), Verdict.DropAcl, 'other remote port');
      h.out(craftEcho(m.B, m.A1.ip, 'request', 0x77));
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'reply', 0x77)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'reply', 0x78)), Verdict.DropAcl, 'other echo id');
      assert.equal(h.in(m.A2, craftEcho(m.A2.ip, m.B, 'reply', 0x77)), Verdict.DropAcl, 'reply from a host we did not ping');
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'request', 0x77)), Verdict.DropAcl, 'a request is not a reply');
      h.advance(31_000);
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'reply', 0x77)), Verdict.DropAcl, 'ICMP idles out after 30 s');
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 53, 53000)), Verdict.Accept, 'UDP refreshed 31 s ago still open');
      h.advance(61_000);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 53, 53000)), Verdict.DropAcl, 'UDP idles out after 60 s');
    });

    test('ICMP errors about a flow B opened pass; unrelated ones follow the policy', () => {
      const m = mesh(six);
      const h = harness(sshFromA(m));
      const syn = craftTcp(m.B, m.A1.ip, 41000, 5000, SYN);
      h.out(syn);
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'unreachable', syn)), Verdict.Accept);
      const big = craftUdp(m.B, m.A1.ip, 6000, 7000, Buffer.alloc(1300));
      h.out(big);
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'too-big', big)), Verdict.Accept, 'PMTU signal');
      const never = craftTcp(m.B, m.A1.ip, 41001, 5000, SYN);
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'unreachable', never)), Verdict.DropAcl);
      assert.equal(h.f.counters().acceptedReply, 2);
      // Errors about B's answers on a flow A1 opened pass while the policy allows that flow.
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, SYN)), Verdict.Accept);
      const answer = craftTcp(m.B, m.A1.ip, 22, 40000, DATA, Buffer.alloc(1300));
      h.out(answer);
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'too-big', answer)), Verdict.Accept);
      h.f.setPolicy(compileFilter({ rules: [] }));
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'too-big', answer)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftIcmpError(m.A1.ip, m.B, 'unreachable', syn)), Verdict.Accept, "B's own flow");
    });

    test('a policy change flips verdicts on the next packet, including established flows', () => {
      const m = mesh(six);
      const h = harness(sshFromA(m));
      // A1 has an SSH session to B; B has its own connection out to A1:5000.
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, SYN)), Verdict.Accept);
      h.out(craftTcp(m.B, m.A1.ip, 22, 40000, SYNACK));
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, DATA)), Verdict.Accept);
      h.out(craftTcp(m.B, m.A1.ip, 41000, 5000, SYN));
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41000, SYNACK)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 80, SYN)), Verdict.DropAcl);

      // Revoke: SSH allowed only from A2, and tcp/80 from anyone.
      h.f.setPolicy(
        compileFilter({
          rules: [
            { action: 'accept', srcPeers: [m.A2.key], dstCidrs: [m.B], proto: 'tcp', dstPorts: ['22'] },
            { action: 'accept', proto: 'tcp', dstPorts: ['80'] },
          ],
        }),
      );
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, DATA)), Verdict.DropAcl, 'established SSH stops at once');
      // B keeps answering on the old session; that must not turn it into "B's own" flow.
      h.out(craftTcp(m.B, m.A1.ip, 22, 40000, DATA));
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, DATA)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 80, SYN)), Verdict.Accept, 'newly allowed');
      assert.equal(h.in(m.A2, craftTcp(m.A2.ip, m.B, 40000, 22, SYN)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41000, DATA)), Verdict.Accept, "B's own connection still gets replies");

      // Restore: the old session passes again.
      h.f.setPolicy(compileFilter(sshFromA(m)));
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 22, DATA)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 40000, 80, SYN)), Verdict.DropAcl);
    });

    test('a policy change also stops a peer-opened UDP flow that B answers', () => {
      const m = mesh(six);
      const h = harness({ rules: [{ action: 'accept', srcPeers: [m.A1.key], proto: 'udp', dstPorts: ['5353'] }] });
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 6000, 5353)), Verdict.Accept);
      h.out(craftUdp(m.B, m.A1.ip, 5353, 6000));
      h.f.setPolicy(compileFilter({ rules: [] }));
      h.out(craftUdp(m.B, m.A1.ip, 5353, 6000));
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 6000, 5353)), Verdict.DropAcl);
    });

    test('spoofed inner source is dropped and counted, whatever the policy', () => {
      const m = mesh(six);
      for (const spec of [null, { defaultAction: 'accept', rules: [] } as FilterSpec, sshFromA(m)]) {
        const h = harness(spec);
        assert.equal(h.in(m.A1, craftTcp(m.A2.ip, m.B, 40000, 22, SYN)), Verdict.DropSpoof, 'A1 posing as A2');
        assert.equal(h.in(m.A1, craftTcp(m.ip(0xfe), m.B, 40000, 22, SYN)), Verdict.DropSpoof);
        // A reply to B's own flow is no exception.
        h.out(craftUdp(m.B, m.A2.ip, 1, 2));
        assert.equal(h.in(m.A1, craftUdp(m.A2.ip, m.B, 2, 1)), Verdict.DropSpoof);
        assert.equal(h.f.counters().spoof, 3);
        // C's routed subnet is C's to use.
        const sub = six ? 'fd00:c::5' : '192.168.13.5';
        assert.equal(h.in(m.C, craftUdp(sub, m.B, 1, 2)) === Verdict.DropSpoof, false);
      }
    });

    test('no policy = allow all', () => {
      const m = mesh(six);
      const h = harness(null);
      assert.equal(h.f.currentPolicy, null);
      assert.equal(h.in(m.C, craftTcp(m.C.ip, m.B, 1, 80, SYN)), Verdict.Accept);
      assert.equal(h.in(m.C, craftEcho(m.C.ip, m.B, 'request', 1)), Verdict.Accept);
      assert.equal(h.in(m.C, craftPacket({ src: m.C.ip, dst: m.B, proto: 47, payload: Buffer.alloc(8) })), Verdict.Accept);
      h.f.setPolicy(compileFilter(sshFromA(m)));
      assert.equal(h.in(m.C, craftTcp(m.C.ip, m.B, 1, 80, DATA)), Verdict.DropAcl);
      h.f.setPolicy(null);
      assert.equal(h.in(m.C, craftTcp(m.C.ip, m.B, 1, 80, DATA)), Verdict.Accept);
    });

    test('first matching rule wins', () => {
      const m = mesh(six);
      const drop = { action: 'drop', srcPeers: [m.A1.key], proto: 'tcp', dstPorts: ['22'] } as const;
      const allow = { action: 'accept', proto: 'tcp', dstPorts: ['22'] } as const;
      const h1 = harness({ rules: [drop, allow] });
      assert.equal(h1.in(m.A1, craftTcp(m.A1.ip, m.B, 1, 22, SYN)), Verdict.DropAcl);
      assert.equal(h1.in(m.A2, craftTcp(m.A2.ip, m.B, 1, 22, SYN)), Verdict.Accept);
      const h2 = harness({ rules: [allow, drop] });
      assert.equal(h2.in(m.A1, craftTcp(m.A1.ip, m.B, 1, 22, SYN)), Verdict.Accept);
      const h3 = harness({ defaultAction: 'accept', rules: [drop] });
      assert.equal(h3.in(m.A1, craftTcp(m.A1.ip, m.B, 1, 22, SYN)), Verdict.DropAcl);
      assert.equal(h3.in(m.A1, craftTcp(m.A1.ip, m.B, 1, 23, SYN)), Verdict.Accept, 'defaultAction accept');
    });

    test('port ranges and source ports; sources by address', () => {
      const m = mesh(six);
      const h = harness({
        rules: [
          { action: 'accept', proto: 'tcp', dstPorts: ['8000-9000', '22'] },
          { action: 'accept', proto: 'udp', srcPorts: ['53'], dstPorts: ['1024-65535'] },
          { action: 'accept', srcCidrs: [six ? 'fd00:c::/64' : '192.168.13.0/24'], proto: 'icmp' },
          { action: 'accept', proto: '*', dstPorts: ['7'] },
        ],
      });
      const tcp = (port: number): number => h.in(m.A1, craftTcp(m.A1.ip, m.B, 1000, port, SYN));
      assert.deepEqual([7999, 8000, 8500, 9000, 9001, 22, 21, 23].map(tcp), [1, 0, 0, 0, 1, 0, 1, 1]);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 53, 1024)), Verdict.Accept);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 53, 1023)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 54, 2000)), Verdict.DropAcl);
      assert.equal(h.in(m.C, craftEcho(six ? 'fd00:c::9' : '192.168.13.9', m.B, 'request', 1)), Verdict.Accept);
      assert.equal(h.in(m.C, craftEcho(m.C.ip, m.B, 'request', 1)), Verdict.DropAcl);
      assert.equal(h.in(m.A1, craftUdp(m.A1.ip, m.B, 9, 7)), Verdict.Accept, "proto '*' with ports: udp");
      assert.equal(h.in(m.A1, craftEcho(m.A1.ip, m.B, 'request', 7)), Verdict.DropAcl, "proto '*' with ports: not icmp");
    });

    test('fragments: later fragments follow their first fragment', () => {
      const m = mesh(six);
      const h = harness({ rules: [{ action: 'accept', proto: 'udp', dstPorts: ['4789'] }] });
      const ok = fragmentPacket(craftUdp(m.A1.ip, m.B, 1000, 4789, Buffer.alloc(300, 7)), 128, 0x0101);
      assert.equal(ok.length, 3);
      assert.deepEqual(ok.map((f) => h.in(m.A1, f)), [0, 0, 0]);
      const no = fragmentPacket(craftUdp(m.A1.ip, m.B, 1000, 4790, Buffer.alloc(300, 7)), 128, 0x0202);
      assert.deepEqual(no.map((f) => h.in(m.A1, f)), [Verdict.DropAcl, Verdict.DropFragment, Verdict.DropFragment]);
      // A later fragment alone (or one reusing an accepted id from another peer's address) is dropped.
      const lone = fragmentPacket(craftUdp(m.A1.ip, m.B, 1000, 4789, Buffer.alloc(300, 7)), 128, 0x0303);
      assert.equal(h.in(m.A1, lone[1]!), Verdict.DropFragment);
      const other = fragmentPacket(craftUdp(m.A2.ip, m.B, 1000, 4789, Buffer.alloc(300, 7)), 128, 0x0101);
      assert.equal(h.in(m.A2, other[2]!), Verdict.DropFragment);
      // Fragment state idles out.
      h.advance(31_000);
      assert.equal(h.in(m.A1, ok[1]!), Verdict.DropFragment);
      // Replies to B's own flow arrive fragmented too.
      h.out(craftUdp(m.B, m.A1.ip, 2000, 3000));
      const reply = fragmentPacket(craftUdp(m.A1.ip, m.B, 3000, 2000, Buffer.alloc(300, 1)), 128, 0x0404);
      assert.deepEqual(reply.map((f) => h.in(m.A1, f)), [0, 0, 0]);
      assert.equal(h.f.counters().fragment, 5);
    });

    test('malformed packets are dropped and counted, inbound and outbound', () => {
      const m = mesh(six);
      const h = harness(null);
      const good = craftTcp(m.A1.ip, m.B, 1, 22, SYN);
      assert.equal(h.in(m.A1, good.subarray(0, good.length - 1)), Verdict.DropMalformed);
      assert.equal(h.in(m.A1, Buffer.from([0x45])), Verdict.DropMalformed);
      assert.equal(h.out(Buffer.alloc(60)), Verdict.DropMalformed);
      const c = h.f.counters();
      assert.equal(c.malformed, 2);
      assert.equal(c.outboundMalformed, 1);
      assert.equal(c.outbound, 0);
    });
  });
}

test('TCP idle timeouts follow the connection state', () => {
  const m = mesh(false);
  const h = harness({ rules: [] });
  const reply = (flags: number): number => h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41000, flags));
  h.out(craftTcp(m.B, m.A1.ip, 41000, 5000, SYN));
  h.advance(59_000);
  assert.equal(reply(SYNACK), Verdict.Accept, 'opening: 60 s');
  h.out(craftTcp(m.B, m.A1.ip, 41000, 5000, ACK));
  h.advance(299_000);
  assert.equal(reply(DATA), Verdict.Accept, 'established: 5 min idle');
  h.advance(301_000);
  assert.equal(reply(DATA), Verdict.DropAcl, 'expired after 5 min idle');

  h.out(craftTcp(m.B, m.A1.ip, 41001, 5000, SYN));
  h.advance(61_000);
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41001, SYNACK)), Verdict.DropAcl, 'unanswered SYN expires after 60 s');

  h.out(craftTcp(m.B, m.A1.ip, 41002, 5000, SYN));
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41002, SYNACK)), Verdict.Accept);
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41002, TCP_RST)), Verdict.Accept);
  h.advance(11_000);
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41002, ACK)), Verdict.DropAcl, 'reset: 10 s');

  h.out(craftTcp(m.B, m.A1.ip, 41003, 5000, SYN));
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41003, SYNACK)), Verdict.Accept);
  h.out(craftTcp(m.B, m.A1.ip, 41003, 5000, TCP_FIN | ACK));
  h.advance(59_000);
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41003, TCP_FIN | ACK)), Verdict.Accept, 'closing: 60 s');
  h.advance(61_000);
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41003, ACK)), Verdict.DropAcl);

  // Mid-stream outbound TCP does not open a flow (it could be a peer-opened one that expired).
  h.out(craftTcp(m.B, m.A1.ip, 41004, 5000, DATA));
  assert.equal(h.in(m.A1, craftTcp(m.A1.ip, m.B, 5000, 41004, DATA)), Verdict.DropAcl);
});

test('the flow table is bounded: old flows are evicted, never an error', () => {
  const m = mesh(false);
  const f = new PacketFilter({ maxFlows: 64 });
  f.setPolicy(compileFilter({ rules: [] }));
  const now = 5_000;
  for (let port = 1000; port < 3000; port++) f.outbound(craftUdp(m.B, m.A1.ip, port, 53), 0, 28, now);
  assert.ok(f.trackedFlows(now) <= 64);
  assert.ok(f.trackedFlows(now) >= 32, 'the table is used');
  const c = f.counters();
  assert.ok(c.flowEvictions >= 2000 - 64);
  // The most recent flow is there; the first is gone.
  const late = craftUdp(m.A1.ip, m.B, 53, 2999);
  assert.equal(f.inbound(late, 0, late.length, m.A1.key, m.A1.check, now), Verdict.Accept);
  const early = craftUdp(m.A1.ip, m.B, 53, 1000);
  assert.equal(f.inbound(early, 0, early.length, m.A1.key, m.A1.check, now), Verdict.DropAcl);
  // Expired entries are reused without counting as evictions.
  f.outbound(craftUdp(m.B, m.A1.ip, 9999, 53), 0, 28, now + 120_000);
  assert.equal(f.counters().flowEvictions, c.flowEvictions);
  assert.equal(f.trackedFlows(now + 120_000), 1);
  f.clearTracking();
  assert.equal(f.trackedFlows(now + 120_000), 0);
});

test('setPolicy rejects a malformed compiled filter and keeps the old one', () => {
  const m = mesh(false);
  const f = new PacketFilter();
  const good = compileFilter(sshFromA(m));
  f.setPolicy(good);
  assert.throws(() => f.setPolicy({ defaultAction: 'drop', rules: [{ ...good.rules[0]!, proto: 'sctp' as 'tcp' }] }), /E_ACL_INVALID|proto/);
  assert.throws(() => f.setPolicy({ defaultAction: 'maybe' as 'drop', rules: [] }), /defaultAction/);
  assert.equal(f.currentPolicy, good);
  const pkt = craftTcp(m.A1.ip, m.B, 1, 22, SYN);
  assert.equal(f.inbound(pkt, 0, pkt.length, m.A1.key, m.A1.check, 0), Verdict.Accept);
});

/**
 * The per-peer path state machine (PeerEndpoint) against a fake clock and a recording I/O: the
 * decisions of docs/DESIGN.md §5.2 — relay first, probe all candidates and call-me-maybe, switch to the
 * best direct path ignoring < 1 % gains, heartbeat every 3 s while traffic flows, trust 6.5 s
 * after the last pong, fall back to the relay when silent, re-probe every 60 s when latency
 * > 5 ms, stop after 45 s idle, learn candidates from pings.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ADDR_SIZE } from '../../src/engine/packet-batch.js';
import { addrAt, parseAddr, writeRelaySource, type ParsedAddr } from '../../src/engine/magicsock/addr.js';
import {
  CALL_ME_MAYBE_INTERVAL_MS,
  HEARTBEAT_INTERVAL_MS,
  SESSION_ACTIVE_TIMEOUT_MS,
  TICK_MS,
  TRUST_UDP_ADDR_MS,
  UPGRADE_INTERVAL_MS,
} from '../../src/engine/magicsock/constants.js';
import type { DiscoMessage, DiscoPing } from '../../src/engine/magicsock/disco.js';
import { betterPath, PeerEndpoint, type Candidate, type EndpointEvent, type EndpointIo } from '../../src/engine/magicsock/endpoint.js';
import type { IpPort } from '../../src/engine/magicsock/stun.js';

interface Sent {
  at: number;
  to: string; // candidate key or 'relay'
  msg: DiscoMessage;
}

class FakeIo implements EndpointIo {
  t = 0;
  readonly nodeKey = new Uint8Array(32).fill(7);
  readonly sent: Sent[] = [];
  readonly events: EndpointEvent[] = [];
  readonly owners = new Map<string, PeerEndpoint>();
  readonly active = new Set<PeerEndpoint>();
  ours: IpPort[] = [{ ip: '198.51.100.7', port: 41641 }];
  relay: string | null = 'http://relay.test/derp';
  /** Prefixes routed into our own TUN (by textual prefix of the address, enough here). */
  tunnelledPrefixes: string[] = [];

  now(): number {
    return this.t;
  }
  sendDisco(_ep: PeerEndpoint, to: Candidate | null, msg: DiscoMessage): boolean {
    this.sent.push({ at: this.t, to: to === null ? 'relay' : to.key, msg });
    return true;
  }
  ourEndpoints(): readonly IpPort[] {
    return this.ours;
  }
  relayUrlFor(): string | null {
    return this.relay;
  }
  ownerOf(addrs: Uint8Array, i: number): PeerEndpoint | undefined {
    return this.owners.get(addrAt(addrs, i).key);
  }
  tunnelled(ip: string): boolean {
    return this.tunnelledPrefixes.some((p) => ip.startsWith(p));
  }
  candidateAdded(ep: PeerEndpoint, c: Candidate): void {
    this.owners.set(c.key, ep);
  }
  candidateRemoved(_ep: PeerEndpoint, c: Candidate): void {
    this.owners.delete(c.key);
  }
  activate(ep: PeerEndpoint): void {
    this.active.add(ep);
  }
  event(_ep: PeerEndpoint, e: EndpointEvent): void {
    this.events.push(e);
  }

  pingsTo(key: string, since = -Infinity): DiscoPing[] {
    return this.sent.filter((s) => s.to === key && s.at >= since && s.msg.type === 'ping').map((s) => s.msg as DiscoPing);
  }
  sentOf(type: DiscoMessage['type'], since = -Infinity): Sent[] {
    return this.sent.filter((s) => s.msg.type === type && s.at >= since);
  }
}

const A = '203.0.113.10:41641';
const B = '203.0.113.20:41641';
const C = '192.168.1.10:41641';
const addr = (s: string): ParsedAddr => parseAddr(s)!;

function setup(endpoints: string[] = [A, B]): { io: FakeIo; ep: PeerEndpoint } {
  const io = new FakeIo();
  const ep = new PeerEndpoint(io, 7, new Uint8Array(32).fill(1));
  ep.sharedKey = new Uint8Array(32).fill(2);
  ep.setConfig({ discoKey: new Uint8Array(32).fill(3), endpoints });
  return { io, ep };
}

/** Let time pass in ticks, the device sending every `sendEveryMs` (0 = not at all). */
function run(io: FakeIo, ep: PeerEndpoint, ms: number, opts: { sendEveryMs?: number; answer?: (key: string) => number | null } = {}): void {
  const end = io.t + ms;
  let nextSend = opts.sendEveryMs ? io.t : Infinity;
  let answered = io.sent.length;
  while (io.t < end) {
    io.t = Math.min(end, io.t + Math.min(TICK_MS, opts.sendEveryMs ?? TICK_MS));
    if (io.t >= nextSend) {
      ep.noteSend(io.t);
      if (!ep.hasTrustedPath(io.t)) ep.onSlowPathSend(io.t);
      nextSend = io.t + opts.sendEveryMs!;
    }
    if (io.active.has(ep) && !ep.tick(io.t)) io.active.delete(ep);
    if (opts.answer) answered = answerPings(io, ep, answered, opts.answer);
  }
}

/** Pong every ping sent since index `from` whose target answers (latency in ms, or null). */
function answerPings(io: FakeIo, ep: PeerEndpoint, from: number, latencyOf: (key: string) => number | null): number {
  const n = io.sent.length;
  for (let i = from; i < n; i++) {
    const s = io.sent[i]!;
    if (s.msg.type !== 'ping' || s.to === 'relay') continue;
    const lat = latencyOf(s.to);
    if (lat === null) continue;
    const saved = io.t;
    io.t = s.at + lat;
    ep.onPong(s.msg.txId, addr(s.to), { ip: '198.51.100.7', port: 41641 }, io.t);
    io.t = Math.max(saved, io.t);
  }
  return n;
}

describe('PeerEndpoint path state machine', () => {
  test('no direct path: traffic goes to the relay, every candidate is pinged and the peer called', () => {
    const { io, ep } = setup();
    assert.equal(ep.status(0).path, 'relay');
    ep.noteSend(0);
    ep.onSlowPathSend(0);
    assert.equal(io.pingsTo(A).length, 1);
    assert.equal(io.pingsTo(B).length, 1);
    assert.deepEqual(io.pingsTo(A)[0]!.nodeKey, io.nodeKey);
    const cmm = io.sentOf('call-me-maybe');
    assert.equal(cmm.length, 1);
    assert.equal(cmm[0]!.to, 'relay');
    assert.deepEqual((cmm[0]!.msg as { type: 'call-me-maybe'; endpoints: IpPort[] }).endpoints, io.ours);
    assert.equal(io.pingsTo('relay').length, 1, 'the relay path is pinged for its latency');
    // A second send right away does not ping again (5 s per candidate) nor call again.
    io.t = 1000;
    ep.onSlowPathSend(1000);
    assert.equal(io.pingsTo(A).length, 1);
    assert.equal(io.sentOf('call-me-maybe').length, 1);
    assert.ok(io.active.has(ep), 'sending activates heartbeats');
    assert.equal(ep.status(1000).relay, 'http://relay.test/derp');
  });

  test('a pong makes its path direct; heartbeats every 3 s keep it trusted while traffic flows', () => {
    const { io, ep } = setup();
    run(io, ep, 30_000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    const st = ep.status(io.t);
    assert.equal(st.path, 'direct');
    assert.equal(st.endpoint, A);
    assert.equal(st.latencyMs, 10);
    assert.deepEqual(ep.bestAddr, addr(A).addr);
    const beats = io.pingsTo(A, 5000);
    const times = io.sent.filter((s) => s.to === A && s.msg.type === 'ping' && s.at >= 5000).map((s) => s.at);
    assert.ok(beats.length >= 7 && beats.length <= 9, `heartbeats in 25 s: ${times.join(',')}`);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= HEARTBEAT_INTERVAL_MS - 1 && gap <= HEARTBEAT_INTERVAL_MS + TICK_MS, `gap ${gap}`);
    }
    assert.ok(io.events.some((e) => e.type === 'path-changed' && e.to === A));
  });

  test('a silent direct path is trusted 6.5 s after its last pong, then traffic falls back to the relay', () => {
    const { io, ep } = setup();
    run(io, ep, 10_000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    const lastPong = Math.max(...io.sent.filter((s) => s.to === A && s.msg.type === 'ping').map((s) => s.at)) + 10;
    assert.equal(ep.status(io.t).path, 'direct');
    // From now on nothing answers.
    const silentFrom = io.t;
    run(io, ep, lastPong + TRUST_UDP_ADDR_MS - 100 - io.t, { sendEveryMs: 100 });
    assert.equal(ep.status(io.t).path, 'direct', 'still trusted just before the deadline');
    run(io, ep, 300, { sendEveryMs: 100 });
    const st = ep.status(io.t);
    assert.equal(st.path, 'relay');
    assert.equal(st.bestEndpoint, A, 'the stale path is still known (and still gets copies)');
    assert.equal(ep.hasTrustedPath(io.t), false);
    assert.ok(io.events.some((e) => e.type === 'path-lost' && e.addr === A));
    assert.ok(io.sentOf('call-me-maybe', silentFrom).length >= 1, 'the peer is called again');
    // When the path answers again it is direct at once.
    run(io, ep, 6000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    assert.equal(ep.status(io.t).path, 'direct');
  });

  test('lower latency wins, but not by less than 1 %', () => {
    const { io, ep } = setup();
    let latB = 9.95;
    run(io, ep, 2000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : k === B ? latB : null) });
    // A answered first; B's 0.5 % better answers do not take over.
    assert.equal(ep.status(io.t).endpoint, A);
    assert.ok(Math.abs(ep.candidates.get(B)!.latencyMs! - 9.95) < 1e-6, 'B did answer');
    assert.equal(betterPath({ latencyMs: 9.95 } as Candidate, { latencyMs: 10 } as Candidate, true), false);
    assert.equal(betterPath({ latencyMs: 9.8 } as Candidate, { latencyMs: 10 } as Candidate, true), true);
    assert.equal(betterPath({ latencyMs: 50 } as Candidate, { latencyMs: 10 } as Candidate, false), true, 'anything beats an untrusted path');
    // A clearly better B takes over at the next full probe (60 s: A's 10 ms is not good enough).
    latB = 5;
    run(io, ep, UPGRADE_INTERVAL_MS + 5000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : k === B ? latB : null) });
    assert.equal(ep.status(io.t).endpoint, B);
  });

  test('re-probes all candidates every 60 s when the path is slower than 5 ms, never when faster', () => {
    for (const [lat, expectProbe] of [
      [20, true],
      [2, false],
    ] as const) {
      const { io, ep } = setup();
      run(io, ep, 2000, { sendEveryMs: 100, answer: (k) => (k === A ? lat : null) });
      assert.equal(ep.status(io.t).endpoint, A);
      const t0 = io.t;
      run(io, ep, UPGRADE_INTERVAL_MS + 2 * HEARTBEAT_INTERVAL_MS, { sendEveryMs: 100, answer: (k) => (k === A ? lat : null) });
      const probesB = io.pingsTo(B, t0).length;
      assert.equal(probesB > 0, expectProbe, `latency ${lat} ms: ${probesB} probes of the other candidate`);
    }
  });

  test('heartbeats stop 45 s after the last send', () => {
    const { io, ep } = setup();
    run(io, ep, 1000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    const lastSend = io.t;
    run(io, ep, SESSION_ACTIVE_TIMEOUT_MS + 10_000, { answer: (k) => (k === A ? 10 : null) });
    assert.equal(io.active.has(ep), false);
    assert.equal(ep.heartbeatAt, Infinity);
    const late = io.sent.filter((s) => s.at > lastSend + SESSION_ACTIVE_TIMEOUT_MS + HEARTBEAT_INTERVAL_MS);
    assert.deepEqual(late, [], 'nothing sent once idle');
    assert.equal(ep.status(io.t).active, false);
    // The next send wakes it up.
    ep.noteSend(io.t);
    assert.ok(io.active.has(ep));
  });

  test('a liveness probe of an idle peer ticks only until its pings are answered or expire, then idles (no ticks, no pings)', () => {
    for (const answers of [true, false]) {
      const { io, ep } = setup();
      assert.equal(ep.probe(io.t, 0), true);
      io.activate(ep); // as the magic socket does, so that the tick expires the pings
      const probedAt = io.t;
      const pings = io.pingsTo(A).length + io.pingsTo(B).length;
      assert.ok(pings >= 2, 'every candidate pinged');
      run(io, ep, 20_000, { answer: (k) => (answers && k === A ? 10 : null) });
      assert.equal(io.active.has(ep), false, `idle again after the probe (answered: ${answers})`);
      assert.equal(ep.heartbeatAt, Infinity);
      assert.equal(io.sent.filter((s) => s.at > probedAt + 50).length, 0, 'no heartbeats without traffic');
      let ticks = 0;
      for (let i = 0; i < 100; i++) {
        io.t += TICK_MS;
        if (io.active.has(ep)) ticks++;
      }
      assert.equal(ticks, 0);
      // traffic afterwards still starts a session with heartbeats
      run(io, ep, 4 * HEARTBEAT_INTERVAL_MS, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
      assert.ok(io.active.has(ep));
      assert.ok(ep.hasTrustedPath(io.t));
    }
  });

  test('a ping from an unknown address: the address becomes a candidate, gets a pong and a ping back', () => {
    const { io, ep } = setup([]);
    const txId = new Uint8Array(12).fill(9);
    ep.onPing(txId, addr(C), 100);
    const pong = io.sentOf('pong')[0]!;
    assert.equal(pong.to, C);
    assert.deepEqual(pong.msg, { type: 'pong', txId, src: { ip: '192.168.1.10', port: 41641 } });
    assert.equal(io.pingsTo(C).length, 1, 'pinged back');
    assert.ok(ep.candidates.has(C));
    const slot = new Uint8Array(ADDR_SIZE);
    slot.set(addr(C).addr);
    assert.equal(ep.matches(slot, 0), true, 'packets from it belong to the peer');
    // A second ping within a second is answered but not pinged back again.
    ep.onPing(new Uint8Array(12).fill(8), addr(C), 500);
    assert.equal(io.sentOf('pong').length, 2);
    assert.equal(io.pingsTo(C).length, 1);
    // Over the relay: answered over the relay, no candidate.
    ep.onPing(new Uint8Array(12).fill(5), null, 600);
    assert.equal(io.sentOf('pong').at(-1)!.to, 'relay');
    assert.equal(ep.candidates.size, 1);
    // Learned candidates expire once not heard from.
    io.t = 100 + SESSION_ACTIVE_TIMEOUT_MS + 1000;
    ep.discover(io.t, false);
    assert.equal(ep.candidates.has(C), false);
    assert.equal(ep.matches(slot, 0), false);
  });

  test('call-me-maybe: endpoints replace the previous advertisement and are pinged at once; we call back once', () => {
    const { io, ep } = setup([A]);
    ep.noteSend(0);
    ep.onSlowPathSend(0);
    assert.equal(io.pingsTo(A).length, 1);
    io.t = 1000;
    ep.onCallMeMaybe([{ ip: '203.0.113.30', port: 1 }, { ip: '203.0.113.31', port: 2 }, { ip: 'fe80::1', port: 3 }, { ip: '0.0.0.0', port: 4 }], 1000);
    assert.equal(io.pingsTo('203.0.113.30:1').length, 1);
    assert.equal(io.pingsTo('203.0.113.31:2').length, 1);
    assert.equal(io.pingsTo(A).length, 2, 'every candidate is pinged again, 5 s or not');
    assert.equal(ep.candidates.has('[fe80::1]:3'), false, 'link-local skipped');
    assert.equal(ep.candidates.size, 3);
    // A new call-me-maybe withdraws .30 (not from config) and adds .32.
    io.t = 2000;
    ep.onCallMeMaybe([{ ip: '203.0.113.31', port: 2 }, { ip: '203.0.113.32', port: 3 }], 2000);
    assert.deepEqual([...ep.candidates.keys()].sort(), [A, '203.0.113.31:2', '203.0.113.32:3'].sort());
    // We called once at the first send; the answers within 5 s do not call back again.
    assert.equal(io.sentOf('call-me-maybe').length, 1);
    io.t = 1000 + CALL_ME_MAYBE_INTERVAL_MS;
    ep.onCallMeMaybe([{ ip: '203.0.113.31', port: 2 }], io.t);
    assert.equal(io.sentOf('call-me-maybe').length, 2);
  });

  test('matches: the best address, this peer’s relay source, and its known candidates only', () => {
    const { io, ep } = setup();
    const other = new PeerEndpoint(io, 8, new Uint8Array(32).fill(4));
    const slots = new Uint8Array(4 * ADDR_SIZE);
    writeRelaySource(slots, 0, 7);
    writeRelaySource(slots, 1, 8);
    slots.set(addr(B).addr, 2 * ADDR_SIZE);
    slots.set(addr('203.0.113.99:5').addr, 3 * ADDR_SIZE);
    assert.equal(ep.matches(slots, 0), true);
    assert.equal(ep.matches(slots, 1), false);
    assert.equal(other.matches(slots, 1), true);
    assert.equal(ep.matches(slots, 2), true, 'a configured candidate');
    assert.equal(ep.matches(slots, 3), false);
  });

  test('a new disco key (the peer restarted) forgets the path', () => {
    const { io, ep } = setup();
    run(io, ep, 1000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    assert.equal(ep.status(io.t).path, 'direct');
    ep.setConfig({ discoKey: new Uint8Array(32).fill(9), endpoints: [A, B] });
    assert.equal(ep.status(io.t).path, 'relay');
    assert.equal(ep.bestAddr, null);
    assert.ok(io.events.some((e) => e.type === 'disco-reset'));
    // Same key again: nothing reset.
    run(io, ep, 1000, { sendEveryMs: 100, answer: (k) => (k === A ? 10 : null) });
    ep.setConfig({ discoKey: new Uint8Array(32).fill(9), endpoints: [A, B] });
    assert.equal(ep.status(io.t).path, 'direct');
  });

  test('config updates keep run-time candidates and drop withdrawn configured ones', () => {
    const { io, ep } = setup([A, B, 'not-an-endpoint', '0.0.0.0:1']);
    assert.deepEqual([...ep.candidates.keys()].sort(), [A, B].sort());
    ep.onPing(new Uint8Array(12), addr(C), 10);
    ep.setConfig({ discoKey: new Uint8Array(32).fill(3), endpoints: [A] });
    assert.deepEqual([...ep.candidates.keys()].sort(), [A, C].sort());
    assert.equal(io.owners.has(B), false);
  });

  test('a pong counts only from the address its ping went to (relay pings: only over the relay)', () => {
    const { io, ep } = setup([A]);
    ep.noteSend(0);
    ep.onSlowPathSend(0);
    const ping = io.pingsTo(A)[0]!;
    io.t = 10;
    assert.equal(ep.onPong(ping.txId, addr(B), { ip: '198.51.100.7', port: 41641 }, 10), false, 'from another address');
    assert.equal(ep.onPong(ping.txId, null, { ip: '198.51.100.7', port: 41641 }, 10), false, 'over the relay');
    assert.equal(ep.counters.pongsWrongSource, 2);
    assert.equal(ep.status(10).path, 'relay');
    assert.equal(ep.onPong(ping.txId, addr(A), { ip: '198.51.100.7', port: 41641 }, 10), true, 'from where it went');
    assert.equal(ep.status(10).path, 'direct');
    const relayPing = io.pingsTo('relay')[0]!;
    assert.equal(ep.onPong(relayPing.txId, addr(A), { ip: '0.0.0.0', port: 0 }, 11), false);
    assert.equal(ep.onPong(relayPing.txId, null, { ip: '0.0.0.0', port: 0 }, 11), true);
  });

  test('call-me-maybe floods: ≤ 32 endpoints taken per message, ≤ 64 candidates, ≤ 64 pings per 5 s whatever arrives', () => {
    const { io, ep } = setup([]);
    ep.noteSend(0);
    const third = (i: number): IpPort => ({ ip: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 40000 + (i % 1000) });
    let n = 0;
    for (let t = 0; t < 5000; t += 100) {
      io.t = t;
      ep.onCallMeMaybe(Array.from({ length: 64 }, () => third(n++)), t);
      assert.ok(ep.candidates.size <= 64);
    }
    const pings = io.sentOf('ping').length;
    assert.ok(pings <= 64, `${pings} pings in 5 s`);
    assert.ok(ep.counters.pingsLimited > 0);
    // The budget refills with time only: 64 more in the next 5 s at most.
    for (let t = 5000; t < 10_000; t += 100) {
      io.t = t;
      ep.onCallMeMaybe(Array.from({ length: 64 }, () => third(n++)), t);
    }
    assert.ok(io.sentOf('ping', 5000).length <= 64);
    // The same endpoints again and again re-ping a candidate at most once a second.
    const { io: io2, ep: ep2 } = setup([]);
    ep2.noteSend(0);
    const same = [third(1), third(2)];
    for (let t = 0; t < 1000; t += 50) {
      io2.t = t;
      ep2.onCallMeMaybe(same, t);
    }
    assert.equal(io2.pingsTo(`${same[0]!.ip}:${same[0]!.port}`).length, 1);
  });

  test('betterPath never switches for a gain under 1 % (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 10_000, noNaN: true }), fc.double({ min: 0, max: 0.0099, noNaN: true }), (lb, gain) => {
        const a = { latencyMs: lb * (1 - gain) } as Candidate;
        const b = { latencyMs: lb } as Candidate;
        return betterPath(a, b, true) === false;
      }),
    );
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 10_000, noNaN: true }), fc.double({ min: 0.0101, max: 0.99, noNaN: true }), (lb, gain) => {
        return betterPath({ latencyMs: lb * (1 - gain) } as Candidate, { latencyMs: lb } as Candidate, true);
      }),
    );
  });
});

describe('addresses that enter our own tunnel are never paths', () => {
  test('refused from the record, a call-me-maybe, a ping and a WireGuard source; dropped once a route covers them', () => {
    const io = new FakeIo();
    io.tunnelledPrefixes = ['fd0d:e100:d3c5:', '2001:db8:77:'];
    const ep = new PeerEndpoint(io, 7, new Uint8Array(32).fill(1));
    ep.sharedKey = new Uint8Array(32).fill(2);
    const mesh = '[fd0d:e100:d3c5::9]:51820';
    const lan = '[2001:db8:77::1]:51820';
    ep.setConfig({ discoKey: new Uint8Array(32).fill(3), endpoints: [A, lan, C] });
    assert.deepEqual([...ep.candidates.keys()].sort(), [A, C].sort());
    ep.onCallMeMaybe([{ ip: '2001:db8:77::1', port: 51820 }, { ip: '203.0.113.30', port: 1 }], 10);
    assert.equal(ep.candidates.has(lan), false);
    assert.ok(ep.candidates.has('203.0.113.30:1'));
    const before = io.sentOf('pong').length;
    ep.onPing(new Uint8Array(12).fill(9), addr(mesh), 20);
    assert.equal(ep.candidates.has(mesh), false, 'a ping through the tunnel made a candidate');
    assert.equal(io.sentOf('pong').length, before, 'a ping through the tunnel was answered');
    ep.onWireGuardFrom(addr(mesh), 30);
    assert.equal(ep.candidates.has(mesh), false);
    // a route into the TUN now covers C (the peer's LAN address): C goes
    io.tunnelledPrefixes.push('192.168.1.');
    assert.equal(ep.dropTunnelled(), 1);
    assert.equal(ep.candidates.has(C), false);
    assert.ok(ep.candidates.has(A));
    assert.equal(ep.counters.candidatesRefused, 5);
  });
});

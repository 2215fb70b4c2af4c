/**
 * Two devices in one process over an in-memory network with a manual clock: handshake,
 * transport both ways, key confirmation, rekey with scaled timers, roaming, keepalives, retry and
 * give-up, cookies under load, peer removal, allowed-IP source checks, and robustness of the
 * receive path against random, replayed, truncated and bit-flipped datagrams.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/engine/wireguard/timers.js';
import { timerConfig } from '../../src/engine/wireguard/constants.js';
import { parsePrefix } from '../../src/util/prefix.js';
import { AddrEndpoint } from '../../src/engine/wireguard/addr-endpoint.js';
import { publicKeyOf, privateKeyObject, clampPrivateKey } from '../../src/engine/wireguard/noise-crypto.js';
import { totalDrops } from '../../src/engine/wireguard/counters.js';
import { paddedLength } from '../../src/engine/wireguard/send.js';
import { CookieGenerator } from '../../src/engine/wireguard/cookie.js';
import { MemoryNet, MemoryTun, ipv4Packet, ipv6Packet, makeDevice } from './wg-fixtures.js';

function keypair(): { priv: Uint8Array; pub: Uint8Array } {
  const priv = clampPrivateKey(randomBytes(32));
  return { priv, pub: publicKeyOf(privateKeyObject(priv)) };
}

function prefixes(...s: string[]) {
  return s.map((x) => parsePrefix(x, { hostBits: 'reject' }));
}

/** Alice 10.0.0.1 at 127.0.0.1:1001, Bob 10.0.0.2 at 127.0.0.2:1002, peered. */
function pair(scale = 1, opts: { bobEndpoint?: boolean } = {}) {
  const net = new MemoryNet();
  const clock = new ManualClock();
  const timers = timerConfig(scale);
  const a = makeDevice(net, '127.0.0.1:1001', { clock, timers });
  const b = makeDevice(net, '127.0.0.2:1002', { clock, timers });
  const ka = keypair();
  const kb = keypair();
  a.device.setPrivateKey(ka.priv);
  b.device.setPrivateKey(kb.priv);
  a.device.upsertPeer({ publicKey: kb.pub, allowedIps: prefixes('10.0.0.2/32', 'fd00::2/128'), endpoint: AddrEndpoint.parse('127.0.0.2:1002') });
  b.device.upsertPeer({
    publicKey: ka.pub,
    allowedIps: prefixes('10.0.0.1/32', 'fd00::1/128'),
    endpoint: opts.bobEndpoint === false ? null : AddrEndpoint.parse('127.0.0.1:1001'),
  });
  a.device.start();
  b.device.start();
  return { net, clock, a, b, ka, kb, timers };
}

const payload = (i: number, n = 100) => {
  const p = new Uint8Array(n);
  p.fill(i & 0xff);
  p[0] = i >> 8;
  p[1] = i & 0xff;
  return p;
};

describe('wireguard device (in memory)', () => {
  test('handshake on first packet, then transport both ways', () => {
    const { net, a, b, ka, kb } = pair();
    const pkt = ipv4Packet('10.0.0.1', '10.0.0.2', payload(1));
    MemoryTun.inject(a.device, [pkt]);
    net.pump();
    // the staged packet went out after the handshake
    assert.equal(b.tun.received.length, 1);
    assert.deepEqual(new Uint8Array(b.tun.received[0]!), pkt);
    const back = ipv4Packet('10.0.0.2', '10.0.0.1', payload(2, 1300));
    MemoryTun.inject(b.device, [back]);
    net.pump();
    assert.equal(a.tun.received.length, 1);
    assert.deepEqual(new Uint8Array(a.tun.received[0]!), back);
    // IPv6 as well
    const v6 = ipv6Packet('fd00::1', 'fd00::2', payload(3, 333));
    MemoryTun.inject(a.device, [v6]);
    net.pump();
    assert.deepEqual(new Uint8Array(b.tun.received[1]!), v6);

    const sa = a.device.peerStats()[0]!;
    const sb = b.device.peerStats()[0]!;
    assert.equal(sa.publicKey, Buffer.from(kb.pub).toString('base64'));
    assert.equal(sb.publicKey, Buffer.from(ka.pub).toString('base64'));
    assert.ok(sa.lastHandshake > 0 && sb.lastHandshake > 0);
    assert.ok(sa.hasSession && sb.hasSession);
    assert.ok(sa.txBytes > 0 && sa.rxBytes > 0);
    assert.equal(sa.txBytes, sb.rxBytes);
    assert.equal(sb.txBytes, sa.rxBytes);
    assert.equal(totalDrops(a.device.counters.drops), 0);
    assert.equal(totalDrops(b.device.counters.drops), 0);
  });

  test('a batch of packets: padding to 16, order kept, none lost', () => {
    const { net, a, b } = pair();
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(0))]);
    net.pump();
    const pkts = Array.from({ length: 200 }, (_, i) => ipv4Packet('10.0.0.1', '10.0.0.2', payload(i + 1, 1 + ((i * 37) % 1380))));
    MemoryTun.inject(a.device, pkts);
    net.pump();
    assert.equal(b.tun.received.length, 201);
    for (let i = 0; i < 200; i++) assert.deepEqual(new Uint8Array(b.tun.received[i + 1]!), pkts[i]);
  });

  test('padding rule matches wireguard-go', () => {
    assert.equal(paddedLength(0, 1420), 0);
    assert.equal(paddedLength(1, 1420), 16);
    assert.equal(paddedLength(16, 1420), 16);
    assert.equal(paddedLength(17, 1420), 32);
    assert.equal(paddedLength(1419, 1420), 1420);
    assert.equal(paddedLength(1420, 1420), 1420);
    assert.equal(paddedLength(1415, 1418), 1418);
  });

  test('rekey after REKEY_AFTER_TIME (scaled) without losing packets', () => {
    const scale = 0.01; // rekey after 1.2 s, reject after 1.8 s
    const { net, clock, a, b, timers } = pair(scale);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(0))]);
    net.pump();
    let sent = 1;
    const step = () => {
      MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(sent++))]);
      MemoryTun.inject(b.device, [ipv4Packet('10.0.0.2', '10.0.0.1', payload(sent++))]);
      net.pump();
      clock.advance(20);
      net.pump();
    };
    const total = Math.ceil((timers.rejectAfterTime * 4) / 20);
    for (let i = 0; i < total; i++) step();
    const pa = a.device.peerStats()[0]!;
    const pb = b.device.peerStats()[0]!;
    assert.ok(pa.handshakes >= 5, `expected several rekeys, got ${pa.handshakes}`);
    assert.equal(a.tun.received.length + b.tun.received.length, sent);
    assert.equal(totalDrops(a.device.counters.drops), 0, JSON.stringify(a.device.counters.drops));
    assert.equal(totalDrops(b.device.counters.drops), 0, JSON.stringify(b.device.counters.drops));
    assert.ok(pb.hasSession);
  });

  test('simultaneous first packets: both initiate, the larger key keeps its initiation, no retry needed', () => {
    const { net, a, b, ka, kb } = pair(0.01);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    MemoryTun.inject(b.device, [ipv4Packet('10.0.0.2', '10.0.0.1', payload(2))]);
    net.pump();
    // no clock advance: without the tie-break each side voids its own initiation and refuses the
    // other's response, and both wait a REKEY_TIMEOUT
    assert.equal(a.tun.received.length, 1);
    assert.equal(b.tun.received.length, 1);
    const aWins = Buffer.compare(Buffer.from(ka.pub), Buffer.from(kb.pub)) > 0;
    assert.equal(a.device.counters.initiationsCrossed, aWins ? 1 : 0);
    assert.equal(b.device.counters.initiationsCrossed, aWins ? 0 : 1);
    assert.equal(totalDrops(a.device.counters.drops) + totalDrops(b.device.counters.drops), 0);
  });

  test('keepalive after KEEPALIVE_TIMEOUT when only receiving; persistent keepalive', () => {
    const { net, clock, a, b, timers } = pair(0.01);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    const rxBefore = a.device.peerStats()[0]!.rxBytes;
    clock.advance(timers.keepaliveTimeout + timers.tickInterval * 2);
    net.pump();
    // b received data and sent nothing back: it sends a 32-byte keepalive
    assert.equal(a.device.peerStats()[0]!.rxBytes, rxBefore + 32);
    // persistent keepalive every second
    b.device.upsertPeer({ publicKey: a.device.publicKey!, persistentKeepalive: 1 });
    const before = a.device.peerStats()[0]!.rxBytes;
    for (let i = 0; i < 30; i++) {
      clock.advance(100);
      net.pump();
    }
    const got = a.device.peerStats()[0]!.rxBytes - before;
    assert.ok(got >= 2 * 32, `persistent keepalives: ${got} bytes`);
  });

  test('responder without an endpoint learns it from the initiation (roaming)', () => {
    const { net, a, b } = pair(1, { bobEndpoint: false });
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    assert.equal(b.device.peerStats()[0]!.endpoint, '127.0.0.1:1001');
    // alice moves to another address: bob follows her authenticated packets
    const moved = net.bind('127.0.0.9:2002');
    moved.start((batch) => a.device.handleDatagrams(batch));
    // re-route alice's sends through the new bind by swapping her bind's identity
    const origSendOne = a.bind.sendOne.bind(a.bind);
    a.bind.sendOne = (d, ep) => moved.sendOne(d, ep);
    a.bind.send = (batch, eps) => moved.send(batch, eps);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(2))]);
    net.pump();
    assert.equal(b.device.peerStats()[0]!.endpoint, '127.0.0.9:2002');
    MemoryTun.inject(b.device, [ipv4Packet('10.0.0.2', '10.0.0.1', payload(3))]);
    net.pump();
    assert.equal(a.tun.received.length, 1);
    a.bind.sendOne = origSendOne;
  });

  test('handshake retries with REKEY_TIMEOUT + jitter, then gives up after REKEY_ATTEMPT_TIME', () => {
    const { net, clock, a, b, timers } = pair(0.01);
    net.filter = (d) => d.to.toString() !== '127.0.0.2:1002'; // bob unreachable
    const events: string[] = [];
    const times: number[] = [];
    const orig = a.bind.sendOne.bind(a.bind);
    a.bind.sendOne = (d, ep) => {
      times.push(clock.now());
      orig(d, ep);
    };
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    for (let t = 0; t < timers.rekeyAttemptTime * 1.5; t += timers.tickInterval) {
      clock.advance(timers.tickInterval);
      net.pump();
    }
    assert.equal(b.tun.received.length, 0);
    assert.equal(times.length, timers.maxTimerHandshakes + 2, `initiations sent: ${times.length}`);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= timers.rekeyTimeout && gap <= timers.rekeyTimeout + timers.rekeyTimeoutJitterMax + timers.tickInterval, `gap ${gap}`);
    }
    assert.equal(a.device.counters.drops['staged-expired'], 1);
    void events;
  });

  test('removed peer: no more delivery, its packets are dropped and counted', () => {
    const { net, a, b, kb } = pair();
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    assert.equal(b.tun.received.length, 1);
    // capture a valid datagram from bob, then remove bob at alice
    const captured: Uint8Array[] = [];
    net.filter = (d) => {
      captured.push(d.data);
      return true;
    };
    MemoryTun.inject(b.device, [ipv4Packet('10.0.0.2', '10.0.0.1', payload(2))]);
    assert.equal(a.device.removePeer(kb.pub), true);
    net.pump();
    assert.equal(a.tun.received.length, 0);
    assert.ok(a.device.counters.drops['unknown-receiver'] >= 1);
    // alice can no longer send to bob's prefix either
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(3))]);
    assert.equal(a.device.counters.drops['no-route'], 1);
    assert.equal(captured.length, 1);
  });

  test('packets whose inner source is outside the peer allowed IPs are dropped', () => {
    const { net, a, b } = pair();
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    // bob sends a packet claiming to be from 10.0.0.77 (routed to alice by destination)
    MemoryTun.inject(b.device, [ipv4Packet('10.0.0.77', '10.0.0.1', payload(2)), ipv4Packet('10.0.0.2', '10.0.0.1', payload(3))]);
    net.pump();
    assert.equal(a.tun.received.length, 1);
    assert.equal(a.device.counters.drops['source-not-allowed'], 1);
  });

  test('under load: handshake needs a cookie (mac2), then completes', () => {
    const { net, a, b } = pair();
    b.device.setUnderLoad(60_000);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    assert.equal(b.device.counters.cookieRepliesSent, 1);
    assert.equal(b.device.counters.drops['cookie-required'], 1);
    assert.equal(b.tun.received.length, 0);
    // the retry carries mac2 with the cookie and is accepted
    const peerAtA = [...a.device.peers.values()][0]!;
    peerAtA.handshake.lastSentHandshake = -Infinity;
    peerAtA.timers.retransmitHandshake = 0;
    a.device.tick();
    net.pump();
    assert.equal(b.tun.received.length, 1);
    assert.equal(b.device.counters.cookieRepliesSent, 1);
  });

  test('filter hooks see every packet in both directions and can drop them', () => {
    const { net, a, b } = pair();
    const seen: string[] = [];
    b.device.setHooks({
      inbound: (buf, off, len, peer) => {
        seen.push(`in ${len} ${peer.publicKeyBase64 === Buffer.from(a.device.publicKey!).toString('base64')}`);
        return buf[off + 20] !== 0xee;
      },
      outbound: (buf, off) => buf[off + 20] !== 0xdd,
    });
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1, 40)), ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(40).fill(0xee))]);
    net.pump();
    assert.equal(b.tun.received.length, 1);
    assert.deepEqual(seen, ['in 60 true', 'in 60 true']);
    assert.equal(b.device.counters.drops['filtered-inbound'], 1);
    MemoryTun.inject(b.device, [ipv4Packet('10.0.0.2', '10.0.0.1', new Uint8Array(40).fill(0xdd)), ipv4Packet('10.0.0.2', '10.0.0.1', payload(2))]);
    net.pump();
    assert.equal(a.tun.received.length, 1);
    assert.equal(b.device.counters.drops['filtered-outbound'], 1);
  });

  test('a flood of handshakes puts the device under load: cookies first, then per-address rate limits', () => {
    const { net, a, b } = pair();
    const from = AddrEndpoint.parse('127.0.0.66:6666');
    const gen = new CookieGenerator(b.device.publicKey!, () => 0, 120_000);
    const junk = (): Uint8Array => {
      const m = new Uint8Array(148);
      m.set(randomBytes(144), 4);
      m[0] = 1;
      m[1] = m[2] = m[3] = 0;
      gen.addMacs(m); // valid mac1: only mac1 is cheap to check, so floods look like this
      return m;
    };
    for (let i = 0; i < 150; i++) b.bind.deliver([{ from, data: junk() }]);
    const d = b.device.counters.drops;
    assert.equal(d['bad-initiation'], 128, 'below the threshold every message is processed');
    assert.equal(d['cookie-required'], 22, 'beyond it, messages without mac2 get a cookie reply');
    const replies = net.queue.filter((q) => q.to.toString() === '127.0.0.66:6666');
    assert.equal(replies.length, 22);
    assert.ok(replies.every((r) => r.data.length === 64 && r.data[0] === 3));
    // the flooder takes the cookie: its messages now pass mac2 but hit the rate limit
    assert.equal(gen.consumeReply(replies.at(-1)!.data), true);
    net.queue = [];
    for (let i = 0; i < 20; i++) b.bind.deliver([{ from, data: junk() }]);
    assert.ok(d['rate-limited'] >= 10, `rate limited: ${d['rate-limited']}`);
    // a real peer still gets through: alice's first attempt earns a cookie, the retry succeeds
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    const peerAtA = [...a.device.peers.values()][0]!;
    peerAtA.handshake.lastSentHandshake = -Infinity;
    peerAtA.timers.retransmitHandshake = 0;
    a.device.tick();
    net.pump();
    assert.equal(b.tun.received.length, 1);
  });

  test('replayed, truncated and bit-flipped transport packets are dropped and counted', () => {
    const { net, a, b } = pair();
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    // capture two genuine datagrams without delivering them
    const captured: Uint8Array[] = [];
    net.filter = (d) => (d.to.toString() === '127.0.0.2:1002' ? (captured.push(new Uint8Array(d.data)), false) : true);
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(2, 500)), ipv4Packet('10.0.0.1', '10.0.0.2', payload(3, 40))]);
    net.pump();
    net.filter = () => true;
    assert.equal(captured.length, 2);
    const [good, good2] = captured as [Uint8Array, Uint8Array];
    const from = AddrEndpoint.parse('127.0.0.1:1001');
    const drops = b.device.counters.drops;
    const before = { ...drops };
    const forged: Uint8Array[] = [good.subarray(0, good.length - 1), good.subarray(0, 31), good.subarray(0, 16)];
    for (const byte of [0, 4, 9, 15, 20, good.length - 1]) {
      const f = new Uint8Array(good);
      f[byte]! ^= 0x10;
      forged.push(f);
    }
    b.bind.deliver(forged.map((data) => ({ from, data })));
    assert.equal(b.tun.received.length, 1, 'no forgery delivered');
    assert.equal(totalDrops(drops) - totalDrops(before), forged.length);
    assert.equal(drops['invalid-message'] - before['invalid-message'], 3); // too short, bad type
    assert.equal(drops['unknown-receiver'] - before['unknown-receiver'], 1); // receiver index flipped
    assert.equal(drops['decrypt-failed'] - before['decrypt-failed'], 4); // tag, counter, body
    assert.equal(drops.replay - before.replay, 1); // counter beyond the limit
    // forgeries did not move the replay window: the genuine packets are still accepted
    b.bind.deliver([{ from, data: good2 }, { from, data: good }]);
    assert.equal(b.tun.received.length, 3);
    // and replaying them now is refused
    b.bind.deliver([{ from, data: good }, { from, data: good2 }, { from, data: good }]);
    assert.equal(b.tun.received.length, 3);
    assert.equal(drops.replay - before.replay, 4);
  });

  test('fast-check: random datagrams never throw, are never delivered, and are all counted', () => {
    const { net, a, b } = pair();
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    const from = AddrEndpoint.parse('127.0.0.1:1001');
    const receiverIndex = (() => {
      // a real receiver index makes transport forgeries reach the decryption step
      const c: Uint8Array[] = [];
      net.filter = (d) => (c.push(d.data), true);
      MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(2))]);
      net.pump();
      net.filter = () => true;
      return c[0]!.subarray(4, 8);
    })();
    const delivered = b.tun.received.length;
    const datagram = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.uint8Array({ minLength: 0, maxLength: 200 })).map(([t, rest]) => {
        const sizes: Record<number, number> = { 1: 148, 2: 92, 3: 64, 4: 32 + rest.length };
        const m = new Uint8Array(sizes[t]!);
        m[0] = t;
        m.set(rest.subarray(0, Math.max(0, m.length - 4)), 4);
        if (t === 4) m.set(receiverIndex, 4);
        return m;
      }),
    );
    fc.assert(
      fc.property(fc.array(datagram, { minLength: 1, maxLength: 20 }), (list) => {
        const before = totalDrops(b.device.counters.drops);
        b.bind.deliver(list.map((data) => ({ from, data })));
        net.pump();
        assert.equal(b.tun.received.length, delivered);
        assert.equal(totalDrops(b.device.counters.drops) - before, list.length);
      }),
      { numRuns: 300 },
    );
  });
  test('timers wake the device only when one is due: none while idle, whatever the number of peers', () => {
    const net = new MemoryNet();
    const manual = new ManualClock();
    let wakeUps = 0;
    const clock = {
      now: () => manual.now(),
      wallMs: () => manual.wallMs(),
      wallNanos: () => manual.wallNanos(),
      every: (ms: number, fn: () => void) => manual.every(ms, () => (wakeUps++, fn())),
      after: (ms: number, fn: () => void) => manual.after(ms, () => (wakeUps++, fn())),
    };
    const timers = timerConfig(1);
    const a = makeDevice(net, '127.0.0.1:1001', { clock, timers });
    const b = makeDevice(net, '127.0.0.2:1002', { clock, timers });
    const ka = keypair();
    const kb = keypair();
    a.device.setPrivateKey(ka.priv);
    b.device.setPrivateKey(kb.priv);
    for (let i = 0; i < 100; i++) a.device.upsertPeer({ publicKey: keypair().pub, allowedIps: prefixes(`10.1.${i}.0/24`), endpoint: AddrEndpoint.parse(`127.0.1.${i + 1}:51820`) });
    a.device.upsertPeer({ publicKey: kb.pub, allowedIps: prefixes('10.0.0.2/32'), endpoint: AddrEndpoint.parse('127.0.0.2:1002') });
    b.device.upsertPeer({ publicKey: ka.pub, allowedIps: prefixes('10.0.0.1/32'), endpoint: AddrEndpoint.parse('127.0.0.1:1001') });
    a.device.start();
    b.device.start();
    manual.advance(60_000);
    assert.equal(wakeUps, 0, 'an idle device woke up');
    // one packet: a handshake, the data, then the timers that follow it (passive keepalive,
    // key material zeroed after 3 × REJECT_AFTER_TIME) — each a wake-up when due, nothing in between
    MemoryTun.inject(a.device, [ipv4Packet('10.0.0.1', '10.0.0.2', payload(1))]);
    net.pump();
    assert.equal(b.tun.received.length, 1);
    const statsOfB = () => a.device.peerStats().find((p) => p.publicKey === Buffer.from(kb.pub).toString('base64'))!;
    const rxBefore = statsOfB().rxBytes;
    for (let t = 0; t < timers.keepaliveTimeout + 1000; t += 100) {
      manual.advance(100);
      net.pump();
    }
    assert.equal(statsOfB().rxBytes, rxBefore + 32, 'the passive keepalive from b did not come');
    const afterKeepalive = wakeUps;
    assert.ok(afterKeepalive >= 1 && afterKeepalive <= 6, `${afterKeepalive} wake-ups for one packet's timers`);
    manual.advance(timers.rejectAfterTime * 3 + 1000);
    net.pump();
    assert.ok(wakeUps - afterKeepalive <= 4, `${wakeUps - afterKeepalive} wake-ups in ${(timers.rejectAfterTime * 3) / 1000} s of quiet`);
    assert.equal(statsOfB().hasSession, false, 'key material not zeroed');
  });
});

/**
 * A user's ping (`meshd ping`) in the per-peer path state machine: it takes the path traffic
 * would take — the trusted direct path, else the relay (starting discovery as a packet would),
 * else every candidate — and reports the first pong that answers it, from where it was sent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addrAt, parseAddr, type ParsedAddr } from '../../src/engine/magicsock/addr.js';
import { MAX_USER_PINGS_IN_FLIGHT } from '../../src/engine/magicsock/constants.js';
import type { DiscoMessage, DiscoPing } from '../../src/engine/magicsock/disco.js';
import { PeerEndpoint, type Candidate, type EndpointIo, type PingReply } from '../../src/engine/magicsock/endpoint.js';

interface Sent {
  at: number;
  to: string;
  msg: DiscoMessage;
}

class FakeIo implements EndpointIo {
  t = 1000;
  readonly nodeKey = new Uint8Array(32).fill(7);
  readonly sent: Sent[] = [];
  readonly owners = new Map<string, PeerEndpoint>();
  relay: string | null = 'https://relay.test/derp';
  now = () => this.t;
  sendDisco(_ep: PeerEndpoint, to: Candidate | null, msg: DiscoMessage): boolean {
    this.sent.push({ at: this.t, to: to === null ? 'relay' : to.key, msg });
    return true;
  }
  ourEndpoints = () => [{ ip: '198.51.100.7', port: 41641 }];
  relayUrlFor = () => this.relay;
  ownerOf = (addrs: Uint8Array, i: number) => this.owners.get(addrAt(addrs, i).key);
  candidateAdded = (ep: PeerEndpoint, c: Candidate) => void this.owners.set(c.key, ep);
  candidateRemoved = (_ep: PeerEndpoint, c: Candidate) => void this.owners.delete(c.key);
  activate = () => undefined;
  event = () => undefined;
  pings(to: string, since = 0): DiscoPing[] {
    return this.sent.filter((s) => s.to === to && s.at >= since && s.msg.type === 'ping').map((s) => s.msg as DiscoPing);
  }
}

const A = '203.0.113.10:41641';
const B = '203.0.113.20:41641';
const addr = (s: string): ParsedAddr => parseAddr(s)!;
const SRC = { ip: '198.51.100.7', port: 41641 };

function setup(endpoints = [A, B]): { io: FakeIo; ep: PeerEndpoint; replies: PingReply[] } {
  const io = new FakeIo();
  const ep = new PeerEndpoint(io, 7, new Uint8Array(32).fill(1));
  ep.sharedKey = new Uint8Array(32).fill(2);
  ep.setConfig({ discoKey: new Uint8Array(32).fill(3), endpoints });
  return { io, ep, replies: [] };
}

test('no trusted path: over the relay, starting discovery; the first pong answers it, once', () => {
  const { io, ep, replies } = setup();
  assert.equal(ep.userPing(io.t, (r) => replies.push(r)), 'relay');
  const relayPing = io.pings('relay');
  assert.equal(relayPing.length, 1);
  assert.equal(io.pings(A).length, 1, 'discovery pinged the candidates');
  assert.equal(io.sent.filter((s) => s.msg.type === 'call-me-maybe').length, 1);
  // a discovery pong does not answer the user's ping
  io.t += 3;
  ep.onPong(io.pings(A)[0]!.txId, addr(A), SRC, io.t);
  assert.deepEqual(replies, []);
  // a pong "from the relay" arriving directly proves nothing
  assert.equal(ep.onPong(relayPing[0]!.txId, addr(B), SRC, io.t), false);
  assert.deepEqual(replies, []);
  io.t += 9;
  ep.onPong(relayPing[0]!.txId, null, SRC, io.t);
  assert.deepEqual(replies, [{ via: 'relay', address: 'https://relay.test/derp', latencyMs: 12 }]);
  ep.onPong(relayPing[0]!.txId, null, SRC, io.t);
  assert.equal(replies.length, 1);
});

test('a trusted direct path: the ping goes there and its pong says so', () => {
  const { io, ep, replies } = setup();
  ep.noteSend(io.t);
  ep.onSlowPathSend(io.t);
  io.t += 2;
  ep.onPong(io.pings(A)[0]!.txId, addr(A), SRC, io.t);
  assert.ok(ep.hasTrustedPath(io.t));
  const before = io.t;
  assert.equal(ep.userPing(io.t, (r) => replies.push(r)), 'direct');
  assert.equal(io.pings('relay', before).length, 0);
  const p = io.pings(A, before);
  assert.equal(p.length, 1);
  io.t += 1;
  ep.onPong(p[0]!.txId, addr(A), SRC, io.t);
  assert.deepEqual(replies, [{ via: 'direct', address: A, latencyMs: 1 }]);
});

test('no relay: every candidate, first pong wins; nowhere to send; no disco key; a bounded number in flight', () => {
  const { io, ep, replies } = setup();
  io.relay = null;
  assert.equal(ep.userPing(io.t, (r) => replies.push(r)), 'candidates');
  const [pa, pb] = [io.pings(A).at(-1)!, io.pings(B).at(-1)!];
  io.t += 4;
  ep.onPong(pb.txId, addr(B), SRC, io.t);
  ep.onPong(pa.txId, addr(A), SRC, io.t + 1);
  assert.deepEqual(replies, [{ via: 'direct', address: B, latencyMs: 4 }]);

  const none = setup([]);
  none.io.relay = null;
  assert.equal(none.ep.userPing(none.io.t, () => assert.fail('no reply expected')), 'no-path');
  const plain = setup();
  plain.ep.sharedKey = null;
  assert.equal(plain.ep.userPing(plain.io.t, () => undefined), 'no-disco');

  const busy = setup();
  for (let i = 0; i < MAX_USER_PINGS_IN_FLIGHT; i++) assert.equal(busy.ep.userPing(busy.io.t, () => undefined), 'relay');
  assert.equal(busy.ep.userPing(busy.io.t, () => undefined), 'busy');
  busy.io.t += 6000; // expired after PING_TIMEOUT_MS: room again
  busy.ep.tick(busy.io.t);
  assert.equal(busy.ep.userPing(busy.io.t, () => undefined), 'relay');
});

/**
 * Two magic sockets on 127.0.0.1 under real WireGuard engines (in-memory TUNs), with a real
 * relay and STUN responder on 127.0.0.1: packets flow over the relay at once, the path becomes
 * direct through disco (call-me-maybe carries the endpoints STUN found), disco and STUN share the
 * WireGuard socket, and a plain WireGuard peer (UdpBind, no disco) still handshakes.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { Engine } from '../../src/engine/engine.js';
import { MagicSock } from '../../src/engine/magicsock/magicsock.js';
import { PeerEndpoint } from '../../src/engine/magicsock/endpoint.js';
import { encodeBindingRequest } from '../../src/engine/magicsock/stun.js';
import { startRelayServer, type RelayServer } from '../../src/engine/relay/server.js';
import { UdpBind } from '../../src/engine/wireguard/udp-bind.js';
import { ipv4Packet, MemoryEngineTun } from './wg-fixtures.js';

interface Node {
  keys: { privateKey: Uint8Array; publicKey: Uint8Array };
  ms: MagicSock;
  tun: MemoryEngineTun;
  engine: Engine;
  ip: string;
}

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function node(ip: string): Promise<Node> {
  const keys = generateBoxKeyPair();
  const ms = await MagicSock.open({ privateKey: keys.privateKey, address: '127.0.0.1' });
  const tun = new MemoryEngineTun();
  const engine = new Engine({ tun, bind: ms, privateKey: keys.privateKey, mtu: 1280 }).start();
  return { keys, ms, tun, engine, ip };
}

function payloadOf(p: Buffer): string {
  return p.subarray(20).toString();
}

describe('magic socket on loopback', () => {
  let relay: RelayServer;
  let url: string;
  let stunPort: number;
  let a: Node;
  let b: Node;

  before(async () => {
    relay = await startRelayServer({ httpPort: 0, stunPort: 0, host: '127.0.0.1' });
    url = relay.address().url;
    stunPort = relay.address().stunPort!;
    a = await node('10.9.0.1');
    b = await node('10.9.0.2');
    for (const [me, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      me.ms.setNetwork({ relays: [{ url, stunPort }] });
      const ep = me.ms.upsertPeer({ publicKey: peer.keys.publicKey, discoKey: peer.ms.discoPublicKey, endpoints: [] });
      assert.ok(ep instanceof PeerEndpoint);
      me.engine.addPeer({ publicKey: peer.keys.publicKey, allowedIps: [`${peer.ip}/32`], endpoint: ep });
    }
    await Promise.all([a.ms.discover('test'), b.ms.discover('test')]);
  });

  after(async () => {
    await a?.engine.stop();
    await b?.engine.stop();
    await Promise.all([a?.ms.close(), b?.ms.close()]);
    await relay?.stop();
  });

  test('STUN through the WireGuard socket finds its own loopback address and port', () => {
    const info = a.ms.localEndpointInfo();
    assert.deepEqual(info.publicEndpoints, [`127.0.0.1:${a.ms.localPort}`]);
    assert.equal(a.ms.status().udpWorks, true);
    assert.equal(a.ms.homeRelay, url);
    assert.equal(info.discoKey, b64(a.ms.discoPublicKey));
  });

  test('first packets go over the relay, then the path turns direct', async () => {
    const relayBefore = relay.stats().packetsSent;
    a.tun.inject([ipv4Packet(a.ip, b.ip, Buffer.from('hello-1'))]);
    await until(() => b.tun.written.some((p) => payloadOf(p) === 'hello-1'), 5000, 'first packet at b');
    assert.ok(relay.stats().packetsSent > relayBefore, 'the handshake went through the relay');
    const t0 = Date.now();
    let n = 2;
    while (a.ms.peerStatus(b64(b.keys.publicKey))?.path !== 'direct' || b.ms.peerStatus(b64(a.keys.publicKey))?.path !== 'direct') {
      if (Date.now() - t0 > 5000) assert.fail(`no direct path: ${JSON.stringify(a.ms.status().peers)}`);
      a.tun.inject([ipv4Packet(a.ip, b.ip, Buffer.from(`hello-${n++}`))]);
      b.tun.inject([ipv4Packet(b.ip, a.ip, Buffer.from(`back-${n}`))]);
      await sleep(50);
    }
    const st = a.ms.peerStatus(b64(b.keys.publicKey))!;
    assert.equal(st.endpoint, `127.0.0.1:${b.ms.localPort}`);
    assert.equal(typeof st.latencyMs, 'number');
    // Now data goes direct: the relay carries nothing more.
    const relayNow = relay.stats().packetsSent;
    const seen = b.tun.written.length;
    for (let i = 0; i < 20; i++) a.tun.inject([ipv4Packet(a.ip, b.ip, Buffer.from(`direct-${i}`))]);
    await until(() => b.tun.written.length >= seen + 20, 3000, 'direct packets');
    assert.equal(relay.stats().packetsSent, relayNow);
    const c = b.ms.counters;
    assert.ok(c.discoReceived > 0 && c.stunReceived > 0 && c.wgReceived >= 20, `one socket carried all three: ${JSON.stringify(c)}`);
    const peerStats = a.engine.peerStats()[0]!;
    assert.equal(peerStats.endpoint, `127.0.0.1:${b.ms.localPort}`);
  });

  test('a taken port falls back to an ephemeral one', async () => {
    const other = await MagicSock.open({ privateKey: generateBoxKeyPair().privateKey, address: '127.0.0.1', port: a.ms.localPort });
    try {
      assert.ok(other.localPort > 0);
      assert.notEqual(other.localPort, a.ms.localPort);
    } finally {
      await other.close();
    }
  });

  test('datagrams that are neither WireGuard, disco nor a STUN answer are counted and dropped', async () => {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const before = a.ms.counters.unknownDatagrams;
    const stunBefore = a.ms.counters.stunReceived;
    s.send(Buffer.from('garbage that is not any protocol'), a.ms.localPort, '127.0.0.1');
    s.send(encodeBindingRequest(), a.ms.localPort, '127.0.0.1'); // a request, not a response to us
    await until(() => a.ms.counters.unknownDatagrams >= before + 2, 2000, 'unknown datagrams counted');
    assert.equal(a.ms.counters.stunReceived, stunBefore);
    s.close();
  });

  test('a plain WireGuard peer without disco handshakes through the magic socket', async () => {
    const keys = generateBoxKeyPair();
    const bind = await UdpBind.open({ address: '127.0.0.1', port: 0 });
    const tun = new MemoryEngineTun();
    const plain = new Engine({ tun, bind, privateKey: keys.privateKey, mtu: 1280 }).start();
    try {
      plain.addPeer({ publicKey: a.keys.publicKey, allowedIps: ['10.9.0.1/32'], endpoint: `127.0.0.1:${a.ms.localPort}` });
      const ep = a.ms.upsertPeer({ publicKey: keys.publicKey, discoKey: null, endpoints: [] });
      assert.equal(ep, null);
      a.engine.addPeer({ publicKey: keys.publicKey, allowedIps: ['10.9.0.3/32'], endpoint: null });
      tun.inject([ipv4Packet('10.9.0.3', a.ip, Buffer.from('plain-hello'))]);
      await until(() => a.tun.written.some((p) => payloadOf(p) === 'plain-hello'), 5000, 'plain peer packet');
      // a learned the plain peer's address from its handshake and can answer.
      a.tun.inject([ipv4Packet(a.ip, '10.9.0.3', Buffer.from('plain-reply'))]);
      await until(() => tun.written.some((p) => payloadOf(p) === 'plain-reply'), 5000, 'reply to plain peer');
    } finally {
      a.engine.removePeer(keys.publicKey);
      a.ms.removePeer(keys.publicKey);
      await plain.stop();
      await bind.close();
    }
  });
});

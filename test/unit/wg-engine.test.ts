/** The engine API the control plane drives: keys, peers added/updated/removed while running, stats, stop. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Engine, parseWgKey, timerScaleFromEnv } from '../../src/engine/engine.js';
import { MeshdError } from '../../src/errors.js';
import { ManualClock } from '../../src/engine/wireguard/timers.js';
import { clampPrivateKey, privateKeyObject, publicKeyOf } from '../../src/engine/wireguard/noise-crypto.js';
import { MemoryEngineTun, MemoryNet, ipv4Packet } from './wg-fixtures.js';
import { AddrEndpoint } from '../../src/engine/wireguard/addr-endpoint.js';
import type { Endpoint } from '../../src/engine/wireguard/bind.js';

function key(): { priv: string; pub: string } {
  const priv = clampPrivateKey(randomBytes(32));
  return { priv: Buffer.from(priv).toString('base64'), pub: Buffer.from(publicKeyOf(privateKeyObject(priv))).toString('base64') };
}

function isConfigError(e: unknown): boolean {
  return e instanceof MeshdError && e.code === 'E_CONFIG_INVALID';
}

function setup() {
  const net = new MemoryNet();
  const clock = new ManualClock();
  const ka = key();
  const kb = key();
  const tunA = new MemoryEngineTun();
  const tunB = new MemoryEngineTun();
  const bindA = net.bind('192.0.2.1:51820');
  const a = new Engine({ tun: tunA, bind: bindA, privateKey: ka.priv, clock, timerScale: 1 }).start();
  const b = new Engine({ tun: tunB, bind: net.bind('192.0.2.2:51820'), privateKey: kb.priv, clock, timerScale: 1 }).start();
  return { net, clock, ka, kb, a, b, tunA, tunB, bindA };
}

describe('engine API', () => {
  test('keys, listen port, add/update/remove peers, stats', () => {
    const { net, ka, kb, a, b, tunB } = setup();
    assert.equal(a.publicKey, ka.pub);
    assert.equal(a.listenPort, 51820);
    a.addPeer({ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: '192.0.2.2:51820' });
    b.addPeer({ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'] });
    assert.throws(() => a.addPeer({ publicKey: kb.pub }), isConfigError, 'duplicate');
    assert.throws(() => a.updatePeer({ publicKey: key().pub }), isConfigError, 'unknown');
    assert.throws(() => a.addPeer({ publicKey: 'not a key' }), isConfigError);
    assert.throws(() => a.addPeer({ publicKey: key().pub, allowedIps: ['10.0.0.0/40'] }), isConfigError);
    assert.throws(() => a.addPeer({ publicKey: key().pub, endpoint: 'nowhere' }), isConfigError);
    assert.throws(() => a.addPeer({ publicKey: key().pub, persistentKeepalive: -1 }), isConfigError);

    tunA_send(a, '10.0.0.1', '10.0.0.2');
    net.pump();
    assert.equal(tunB.written.length, 1);
    // re-applying the same configuration (a network map) does not disturb the session
    a.setPrivateKey(ka.priv);
    a.setPeers([{ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: '192.0.2.2:51820' }]);
    assert.equal(a.peerStats()[0]!.hasSession, true);
    const [s] = a.peerStats();
    assert.deepEqual(
      { key: s!.publicKey, ep: s!.endpoint, ips: s!.allowedIps, ka: s!.persistentKeepalive, session: s!.hasSession },
      { key: kb.pub, ep: '192.0.2.2:51820', ips: ['10.0.0.2/32'], ka: 0, session: true },
    );
    assert.ok(s!.lastHandshake > 0 && s!.rxBytes > 0 && s!.txBytes > 0);

    // update while running: more allowed IPs, keepalive; the session stays
    a.updatePeer({ publicKey: kb.pub, allowedIps: ['10.0.0.2/32', '10.0.1.0/24'], persistentKeepalive: 25 });
    assert.deepEqual(a.peerStats()[0]!.allowedIps, ['10.0.0.2/32', '10.0.1.0/24']);
    assert.equal(a.peerStats()[0]!.hasSession, true);
    assert.equal(a.stats().peers, 1);

    assert.equal(a.removePeer(kb.pub), true);
    assert.equal(a.removePeer(kb.pub), false);
    assert.deepEqual(a.peerStats(), []);
    tunA_send(a, '10.0.0.1', '10.0.0.2');
    assert.equal(a.stats().drops['no-route'], 1);
  });

  test('setPeers applies a whole peer list (add, update, remove)', () => {
    const { a } = setup();
    const p1 = key().pub;
    const p2 = key().pub;
    const p3 = key().pub;
    a.setPeers([
      { publicKey: p1, allowedIps: ['10.1.0.1/32'] },
      { publicKey: p2, allowedIps: ['10.1.0.2/32'] },
    ]);
    assert.deepEqual(a.peerStats().map((s) => s.publicKey).sort(), [p1, p2].sort());
    a.setPeers([
      { publicKey: p2, allowedIps: ['10.1.0.22/32'] },
      { publicKey: p3, allowedIps: ['10.1.0.3/32'], endpoint: '[2001:db8::3]:51820' },
    ]);
    const got = Object.fromEntries(a.peerStats().map((s) => [s.publicKey, s]));
    assert.deepEqual(Object.keys(got).sort(), [p2, p3].sort());
    assert.deepEqual(got[p2]!.allowedIps, ['10.1.0.22/32']);
    assert.equal(got[p3]!.endpoint, '[2001:db8::3]:51820');
  });

  test('setPrivateKey re-keys the device: old sessions end, a new handshake follows', () => {
    const { net, clock, ka, kb, a, b, tunB } = setup();
    a.addPeer({ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: '192.0.2.2:51820' });
    b.addPeer({ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'] });
    tunA_send(a, '10.0.0.1', '10.0.0.2');
    net.pump();
    const k2 = key();
    a.setPrivateKey(k2.priv);
    assert.equal(a.publicKey, k2.pub);
    assert.equal(a.peerStats()[0]!.hasSession, false);
    tunA_send(a, '10.0.0.1', '10.0.0.2');
    net.pump();
    assert.equal(tunB.written.length, 1, 'b does not know the new key');
    assert.ok(b.stats().drops['unknown-peer'] >= 1);
    b.removePeer(ka.pub);
    b.addPeer({ publicKey: k2.pub, allowedIps: ['10.0.0.1/32'] });
    clock.advance(6000); // past REKEY_TIMEOUT since the last initiation
    tunA_send(a, '10.0.0.1', '10.0.0.2');
    net.pump();
    assert.equal(tunB.written.length, 3, 'staged packets delivered after the new handshake');
  });

  test('persistent keepalive peers say hello as soon as the engine starts', () => {
    const net = new MemoryNet();
    const clock = new ManualClock();
    const ka = key();
    const kb = key();
    const tunB = new MemoryEngineTun();
    const b = new Engine({ tun: tunB, bind: net.bind('192.0.2.2:51820'), privateKey: kb.priv, clock, peers: [{ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'] }] }).start();
    const tunA = new MemoryEngineTun();
    const bindA = net.bind('192.0.2.1:51820');
    const a = new Engine({
      tun: tunA,
      bind: bindA,
      privateKey: ka.priv,
      clock,
      peers: [{ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: '192.0.2.2:51820', persistentKeepalive: 25 }],
    });
    // the constructor starts no I/O: nothing read, nothing sent, no timers
    assert.equal(tunA.reading, false);
    assert.equal(bindA.started, false);
    clock.advance(30_000);
    assert.equal(bindA.sent, 0, 'sent before start()');
    a.start();
    assert.equal(tunA.reading, true);
    assert.equal(bindA.started, true);
    net.pump();
    assert.equal(a.peerStats()[0]!.hasSession, true);
    assert.equal(b.peerStats()[0]!.endpoint, '192.0.2.1:51820');
  });

  test('stop ends reading and sessions but leaves the TUN and the bind to their owner; idempotent', async () => {
    const { a, tunA, bindA } = setup();
    await a.stop();
    await a.stop();
    assert.equal(tunA.reading, false, 'still reading the TUN after stop');
    assert.equal(tunA.closed, false, 'stop closed a TUN it did not open');
    assert.equal(bindA.closed, false, 'stop closed a bind it did not open');
    assert.throws(() => a.start(), (e: unknown) => e instanceof MeshdError && e.code === 'E_ENGINE');
  });

  test('roaming goes through the endpoint contract: an endpoint that owns path choice stays the peer\'s', () => {
    const { net, ka, kb, a, b } = setup();
    const roamedFrom: string[] = [];
    // a path-owning endpoint (as the magic socket's PeerEndpoint is): its text changes with path
    // state, it matches no source yet, and takes any new one as a path of its peer
    let path = 'no path';
    const owner: Endpoint = {
      matches: () => false,
      roamed: (addrs, i) => {
        roamedFrom.push(AddrEndpoint.fromAddrs(addrs, i).toString());
        path = 'direct';
        return owner;
      },
      equals: (o) => o === owner,
      toString: () => path,
    };
    a.addPeer({ publicKey: kb.pub, allowedIps: ['10.0.0.2/32'], endpoint: owner });
    b.addPeer({ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'], endpoint: '192.0.2.1:51820' });
    // b initiates towards a (its keepalive starts a handshake at once)
    b.setPeers([{ publicKey: ka.pub, allowedIps: ['10.0.0.1/32'], endpoint: '192.0.2.1:51820', persistentKeepalive: 25 }]);
    net.pump();
    assert.deepEqual(roamedFrom, ['192.0.2.2:51820']);
    assert.equal(a.device.getPeer(Buffer.from(kb.pub, 'base64'))!.endpoint, owner, 'the device replaced a path-owning endpoint');

    // the same endpoint again, or a plain address equal by value, changes nothing — whatever the text says
    a.updatePeer({ publicKey: kb.pub, endpoint: owner });
    assert.equal(a.device.getPeer(Buffer.from(kb.pub, 'base64'))!.endpoint, owner);
    // another endpoint with the same text is another endpoint
    const other: Endpoint = { matches: () => false, roamed: () => null, equals: (o) => o === other, toString: () => 'direct' };
    a.updatePeer({ publicKey: kb.pub, endpoint: other });
    assert.equal(a.device.getPeer(Buffer.from(kb.pub, 'base64'))!.endpoint, other, 'endpoints compared by their text');
    const first = AddrEndpoint.parse('192.0.2.9:1');
    a.updatePeer({ publicKey: kb.pub, endpoint: first });
    a.updatePeer({ publicKey: kb.pub, endpoint: AddrEndpoint.parse('192.0.2.9:1') });
    assert.equal(a.device.getPeer(Buffer.from(kb.pub, 'base64'))!.endpoint, first, 'an equal address replaced the endpoint object');
    a.updatePeer({ publicKey: kb.pub, endpoint: '192.0.2.9:2' });
    assert.equal(a.peerStats()[0]!.endpoint, '192.0.2.9:2');
  });

  test('key and timer-scale parsing', () => {
    assert.throws(() => parseWgKey('AAAA', 'k'), isConfigError);
    assert.throws(() => parseWgKey(new Uint8Array(31), 'k'), isConfigError);
    assert.equal(parseWgKey(new Uint8Array(32), 'k').length, 32);
    assert.equal(timerScaleFromEnv({}), 1);
    assert.equal(timerScaleFromEnv({ MESHD_WG_TIMER_SCALE: '0.05' }), 0.05);
    assert.throws(() => timerScaleFromEnv({ MESHD_WG_TIMER_SCALE: '2' }), isConfigError);
    assert.throws(() => timerScaleFromEnv({ MESHD_WG_TIMER_SCALE: 'x' }), isConfigError);
  });
});

function tunA_send(e: Engine, src: string, dst: string): void {
  e.device.handleTunBatch(batchOf(ipv4Packet(src, dst, randomBytes(64))));
}

import { HEADROOM, PacketBatch } from '../../src/engine/packet-batch.js';
function batchOf(p: Uint8Array): PacketBatch {
  const b = new PacketBatch(4);
  b.reset(HEADROOM);
  b.push(p, HEADROOM);
  return b;
}

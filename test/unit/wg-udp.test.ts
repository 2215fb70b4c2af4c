/**
 * Two engines in one process over the plain UDP bind on 127.0.0.1 (real sockets: the addon's
 * recvmmsg/sendmmsg, or node:dgram with MESHD_PURE_TS=1) with in-memory TUN stand-ins and the
 * real clock, timers scaled down: handshake, transport both ways, rekey without losing packets,
 * peer removal stops delivery.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine } from '../../src/engine/engine.js';
import { createAeadBatch } from '../../src/engine/crypto/aead-batch.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { UdpBind } from '../../src/engine/wireguard/udp-bind.js';
import { clampPrivateKey, privateKeyObject, publicKeyOf } from '../../src/engine/wireguard/noise-crypto.js';
import { totalDrops } from '../../src/engine/wireguard/counters.js';
import type { DeviceEvent } from '../../src/engine/wireguard/device.js';
import { MemoryEngineTun, ipv4Packet } from './wg-fixtures.js';

function key(): { priv: string; pub: string } {
  const priv = clampPrivateKey(randomBytes(32));
  return { priv: Buffer.from(priv).toString('base64'), pub: Buffer.from(publicKeyOf(privateKeyObject(priv))).toString('base64') };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

type Impl = 'native' | 'pure';

async function pair(timerScale: number, impl: Impl) {
  const ka = key();
  const kb = key();
  const udp = impl === 'native' ? ('native' as const) : ('dgram' as const);
  const aead = createAeadBatch({ implementation: impl === 'native' ? 'native' : 'node-crypto' });
  const bindA = await UdpBind.open({ address: '127.0.0.1', implementation: udp });
  const bindB = await UdpBind.open({ address: '127.0.0.1', implementation: udp });
  const tunA = new MemoryEngineTun();
  const tunB = new MemoryEngineTun();
  const events: Array<DeviceEvent & { at: 'a' | 'b' }> = [];
  const a = new Engine({ tun: tunA, bind: bindA, aead, privateKey: ka.priv, timerScale, onEvent: (e) => events.push({ ...e, at: 'a' }) }).start();
  const b = new Engine({ tun: tunB, bind: bindB, aead, privateKey: kb.priv, timerScale, onEvent: (e) => events.push({ ...e, at: 'b' }) }).start();
  a.addPeer({ publicKey: kb.pub, allowedIps: ['10.9.0.2/32'], endpoint: `127.0.0.1:${b.listenPort}` });
  b.addPeer({ publicKey: ka.pub, allowedIps: ['10.9.0.1/32'] });
  // the engines stop first, then this test closes the sockets it opened
  const stop = async (): Promise<void> => {
    await Promise.all([a.stop(), b.stop()]);
    await Promise.all([bindA.close(), bindB.close()]);
  };
  return { a, b, tunA, tunB, ka, kb, events, bindA, stop };
}

const body = (i: number) => {
  const p = Buffer.alloc(200 + (i % 1000));
  p.writeUInt32BE(i, 0);
  return p;
};

for (const impl of ['native', 'pure'] as const) describe(`two engines over UDP on 127.0.0.1 (${impl === 'native' ? 'addon: sendmmsg + batch AEAD' : 'node:dgram + node:crypto'})`, () => {
  const skip = (t: import('node:test').TestContext): boolean => impl === 'native' && !requirePrereqs(t, ['native']);
  test('handshake, transport both ways, stats', async (t) => {
    if (skip(t)) return;
    const { a, b, tunA, tunB, ka, kb, stop } = await pair(1, impl);
    t.after(stop);
    tunA.inject([ipv4Packet('10.9.0.1', '10.9.0.2', body(1))]);
    await until(() => tunB.written.length === 1, 3000, 'first packet');
    const many = Array.from({ length: 300 }, (_, i) => ipv4Packet('10.9.0.2', '10.9.0.1', body(i)));
    tunB.inject(many);
    await until(() => tunA.written.length === 300, 3000, 'packets back');
    for (let i = 0; i < 300; i++) assert.deepEqual(new Uint8Array(tunA.written[i]!), many[i]);
    const sa = a.peerStats()[0]!;
    const sb = b.peerStats()[0]!;
    assert.equal(sa.publicKey, kb.pub);
    assert.equal(sb.publicKey, ka.pub);
    assert.equal(sb.endpoint, `127.0.0.1:${a.listenPort}`, 'responder learned the endpoint');
    assert.ok(sa.lastHandshake > Date.now() - 5000);
    assert.equal(sa.txBytes, sb.rxBytes);
    assert.equal(sb.txBytes, sa.rxBytes);
    assert.equal(totalDrops(a.stats().drops) + totalDrops(b.stats().drops), 0);
  });

  test('rekey with scaled-down timers does not lose packets', async (t) => {
    if (skip(t)) return;
    const scale = 0.012; // REKEY_AFTER_TIME 1.44 s, REJECT_AFTER_TIME 2.16 s
    const { a, b, tunA, tunB, events, stop } = await pair(scale, impl);
    t.after(stop);
    let sentAB = 0;
    let sentBA = 0;
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      tunA.inject([ipv4Packet('10.9.0.1', '10.9.0.2', body(sentAB++)), ipv4Packet('10.9.0.1', '10.9.0.2', body(sentAB++))]);
      tunB.inject([ipv4Packet('10.9.0.2', '10.9.0.1', body(sentBA++))]);
      await sleep(10);
    }
    await until(() => tunB.written.length === sentAB && tunA.written.length === sentBA, 3000, 'all packets');
    const completes = events.filter((e) => e.type === 'handshake-complete' && e.at === 'a').length;
    assert.ok(completes >= 3, `rekeys at a: ${completes}`);
    const order = tunB.written.map((w) => w.readUInt32BE(20));
    for (let i = 0; i < sentAB; i++) assert.equal(order[i], i, `order at ${i}: ${order.slice(Math.max(0, i - 5), i + 5).join(',')}`);
    // Every data packet arrived, in order (above). Drops may still come from one thing: when the
    // answer to an initiation takes longer than the scaled REKEY_TIMEOUT (60 ms here, 5 s for
    // real — a busy machine), another initiation replaces it (a retry, or the next data packet's
    // rekey). Then the answer to the replaced one, or a keepalive sealed with the keypair it made,
    // finds no receiver, and an initiation close behind another is refused as a flood (so in
    // wireguard-go too). Never more of those than twice the replaced initiations, none without one.
    const initiated = events.filter((e) => e.type === 'handshake-initiated').length;
    const completed = events.filter((e) => e.type === 'handshake-complete' && e.initiator).length;
    const replaced = initiated - completed;
    const fromReplaced = (d: ReturnType<typeof a.stats>['drops']) => d['unknown-receiver'] + d['handshake-flood'];
    const explained = fromReplaced(a.stats().drops) + fromReplaced(b.stats().drops);
    t.diagnostic(`rekeys ${completes}, initiations ${initiated} (${replaced} replaced), drops from replaced initiations ${explained}`);
    for (const d of [a.stats().drops, b.stats().drops]) assert.equal(totalDrops(d) - fromReplaced(d), 0, JSON.stringify(d));
    assert.ok(explained <= 2 * replaced, `${explained} unknown-receiver/handshake-flood drops with ${replaced} replaced initiations`);
  });

  test('a removed peer stops receiving; adding it back restores traffic', async (t) => {
    if (skip(t)) return;
    const { a, b, tunA, tunB, ka, stop } = await pair(1, impl);
    t.after(stop);
    tunA.inject([ipv4Packet('10.9.0.1', '10.9.0.2', body(1))]);
    await until(() => tunB.written.length === 1, 3000, 'first packet');
    assert.equal(b.removePeer(ka.pub), true);
    assert.equal(b.peerStats().length, 0);
    tunA.inject([ipv4Packet('10.9.0.1', '10.9.0.2', body(2)), ipv4Packet('10.9.0.1', '10.9.0.2', body(3))]);
    await until(() => b.stats().drops['unknown-receiver'] >= 2, 3000, 'drops at b');
    assert.equal(tunB.written.length, 1);
    b.addPeer({ publicKey: ka.pub, allowedIps: ['10.9.0.1/32'], endpoint: `127.0.0.1:${a.listenPort}` });
    tunB.inject([ipv4Packet('10.9.0.2', '10.9.0.1', body(4))]);
    await until(() => tunA.written.length === 1, 8000, 'traffic after re-adding');
  });
});

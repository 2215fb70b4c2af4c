/**
 * netcheck on loopback (a real relay with its STUN responder, a second STUN responder) and the
 * small parsers of the magic socket and its commands: malformed input gives null or a MeshdError,
 * never anything else (fast-check).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { MeshdError } from '../../src/errors.js';
import { ADDR_SIZE } from '../../src/engine/packet-batch.js';
import { isRelaySource, isUsableCandidate, parseAddr, relaySourceId, v4Key, writeRelaySource } from '../../src/engine/magicsock/addr.js';
import { formatNetcheckReport, netcheckStandalone, pickPreferredRelay, parseServerAddress } from '../../src/engine/magicsock/netcheck.js';
import { startRelayServer, type RelayServer } from '../../src/engine/relay/server.js';
import { parseListen } from '../../src/cli/commands/relay.js';
import { parseRelayArg } from '../../src/cli/commands/netcheck.js';

describe('netcheck on loopback', () => {
  let relay: RelayServer;
  let stun2: RelayServer;

  before(async () => {
    relay = await startRelayServer({ httpPort: 0, stunPort: 0, host: '127.0.0.1' });
    stun2 = await startRelayServer({ httpPort: 0, stunPort: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await relay?.stop();
    await stun2?.stop();
  });

  test('reports UDP, the mapped address, an unchanging mapping and the relay latency', async () => {
    const r = await netcheckStandalone({
      relays: [{ url: relay.address().url, stunPort: relay.address().stunPort! }],
      stunServers: [`127.0.0.1:${stun2.address().stunPort}`],
      timeoutMs: 2000,
    });
    assert.equal(r.udp, true);
    assert.equal(r.publicAddresses.length, 1);
    assert.match(r.publicAddresses[0]!, /^(127\.0\.0\.1|::ffff:127\.0\.0\.1)$/);
    assert.equal(r.publicEndpoints.length, 1, 'both servers saw one port');
    assert.equal(r.mapping, 'endpoint-independent');
    assert.equal(r.mappingVariesByDestination, false);
    assert.equal(r.stun.length, 2);
    assert.equal(r.relays.length, 1);
    assert.equal(typeof r.relays[0]!.stunRttMs, 'number');
    assert.equal(typeof r.relays[0]!.latencyMs, 'number', 'DERP ping over TCP');
    assert.equal(r.preferredRelay, relay.address().url);
    const text = formatNetcheckReport(r);
    assert.match(text, /UDP: yes/);
    assert.match(text, /Mapping varies by destination: no/);
    assert.match(text, /\(preferred\)/);
  });

  test('a STUN server that does not answer: UDP unknown to it, reported as failed', async () => {
    const r = await netcheckStandalone({ stunServers: ['127.0.0.1:9'], timeoutMs: 300, relayPing: false });
    assert.equal(r.udp, false);
    assert.deepEqual(r.publicEndpoints, []);
    assert.equal(r.mappingVariesByDestination, null);
    assert.match(r.stun[0]!.error ?? '', /timeout|no answer|within/i);
  });

  test('the preferred relay is the lowest STUN round trip, else the lowest relay ping', () => {
    assert.equal(pickPreferredRelay([{ url: 'a', stunRttMs: 5 }, { url: 'b', stunRttMs: 2 }]), 'b');
    assert.equal(pickPreferredRelay([{ url: 'a', latencyMs: 1 }, { url: 'b', stunRttMs: 20 }]), 'b');
    assert.equal(pickPreferredRelay([{ url: 'a', latencyMs: 9 }, { url: 'b', latencyMs: 3 }]), 'b');
    assert.equal(pickPreferredRelay([{ url: 'a', error: 'x' }]), null);
  });
});

describe('magic socket parsers', () => {
  test('parseAddr: canonical keys, 20-byte addrs, null for anything else', () => {
    assert.deepEqual(
      { ...parseAddr('203.0.113.1:41641')!, addr: undefined },
      { ip: '203.0.113.1', port: 41641, key: '203.0.113.1:41641', addr: undefined },
    );
    assert.equal(parseAddr('[2001:db8::1]:7')!.key, '[2001:db8::1]:7');
    for (const bad of ['', '1.2.3.4', '1.2.3.4:0', '1.2.3.4:65536', '[::1]', 'host:80', '1.2.3:4', '::1:80']) assert.equal(parseAddr(bad), null, bad);
    fc.assert(
      fc.property(fc.string(), (s) => {
        const a = parseAddr(s);
        return a === null || (a.addr.length === ADDR_SIZE && parseAddr(a.key)!.key === a.key);
      }),
    );
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
        const a = parseAddr(`${ip}:${port}`)!;
        return a.key === `${ip}:${port}` && v4Key(a.addr, 0) !== -1;
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
        const a = parseAddr(`[${ip}]:${port}`);
        return a !== null && parseAddr(a.key)!.key === a.key;
      }),
    );
  });

  test('usable candidates exclude unspecified, multicast and IPv6 link-local addresses', () => {
    const u = (s: string): boolean => isUsableCandidate(parseAddr(s)!);
    assert.equal(u('203.0.113.1:1'), true);
    assert.equal(u('127.0.0.1:1'), true);
    assert.equal(u('0.0.0.0:1'), false);
    assert.equal(u('224.0.0.1:1'), false);
    assert.equal(u('[fe80::1]:1'), false);
    assert.equal(u('[::]:1'), false);
    assert.equal(u('[2001:db8::1]:1'), true);
  });

  test('relay sources round-trip their id and are never a UDP address', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 7 }), (id, slot) => {
        const addrs = new Uint8Array(8 * ADDR_SIZE);
        writeRelaySource(addrs, slot, id);
        return isRelaySource(addrs, slot) && relaySourceId(addrs, slot) === id && v4Key(addrs, slot) === -1;
      }),
    );
    const a = parseAddr('203.0.113.1:5')!;
    assert.equal(isRelaySource(a.addr, 0), false);
  });

  test('parseServerAddress: host, port with a default; MeshdError otherwise', () => {
    assert.deepEqual(parseServerAddress('stun.example:3479', 3478), { host: 'stun.example', port: 3479 });
    assert.deepEqual(parseServerAddress('198.51.100.1', 3478), { host: '198.51.100.1', port: 3478 });
    assert.deepEqual(parseServerAddress('[2001:db8::1]:9', 3478), { host: '2001:db8::1', port: 9 });
    assert.deepEqual(parseServerAddress('2001:db8::1', 3478), { host: '2001:db8::1', port: 3478 });
    for (const bad of ['', ':1', 'h:0', 'h:x', 'h:99999', '[::1', '[::1]x']) assert.throws(() => parseServerAddress(bad, 1), MeshdError, bad);
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          const r = parseServerAddress(s, 3478);
          return r.port >= 1 && r.port <= 65535 && r.host.length > 0;
        } catch (e) {
          return e instanceof MeshdError;
        }
      }),
    );
  });

  test('relay serve --listen and netcheck --relay parse or throw usage errors', () => {
    assert.deepEqual(parseListen('198.51.100.10:3340'), { host: '198.51.100.10', port: 3340 });
    assert.deepEqual(parseListen(':3340'), { host: '0.0.0.0', port: 3340 });
    assert.deepEqual(parseListen('[::]:3340'), { host: '::', port: 3340 });
    assert.deepEqual(parseRelayArg('http://r.example:3340/derp#stun=3479'), { url: 'http://r.example:3340/derp', stunPort: 3479 });
    assert.deepEqual(parseRelayArg('http://r.example/derp'), { url: 'http://r.example/derp' });
    for (const f of [() => parseListen('3340'), () => parseListen('a:b'), () => parseRelayArg('nope'), () => parseRelayArg('http://x/#y')]) {
      assert.throws(f, (e: unknown) => e instanceof MeshdError && e.code === 'E_USAGE');
    }
    fc.assert(
      fc.property(fc.string(), (s) => {
        for (const f of [parseListen, parseRelayArg]) {
          try {
            f(s);
          } catch (e) {
            if (!(e instanceof MeshdError)) return false;
          }
        }
        return true;
      }),
    );
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { configFromMap, filterSpecFromAcl, parseRelayUrl, peerEndpoints, MAX_PEER_ENDPOINTS } from '../../src/daemon/map-to-config.js';
import { compileFilter, PacketFilter, Verdict } from '../../src/engine/filter/index.js';
import { formatPrefix } from '../../src/util/prefix.js';
import type { MapPeer, MapRelay, NetworkMap } from '../../src/control/netmap.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');
const KEY_C = Buffer.alloc(32, 3).toString('base64');
const KEY_D = Buffer.alloc(32, 4).toString('base64');

function peer(did: string, key: string, ip: string, extra: Partial<MapPeer> = {}): MapPeer {
  return {
    did, wireguardKey: key, meshIP: ip, meshIP6: `fd0d:e100:d3c5::${ip.split('.')[3]}`, owner: did, hostname: null, os: null,
    capabilities: [], endpoints: [], localEndpoints: [], natType: 'unknown', discoKey: null, preferredRelay: null,
    endpointUpdatedAt: null, online: false, expiresAt: null, ...extra,
  };
}

function relay(url: string, extra: Partial<MapRelay> = {}): MapRelay {
  return { url, region: 'x', regionName: null, stunPort: 3478, stunOnly: false, latitude: null, longitude: null, fingerprint: null, ...extra };
}

function map(over: Partial<NetworkMap>): NetworkMap {
  return {
    formatVersion: 1, networkId: 'n', anchor: 'did:a', epoch: 0,
    network: { name: 'x', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', listenPort: 51820, dnsServers: [], magicDNSSuffix: null, anchorEndpoint: null, defaultRelays: ['http://r2/derp'] },
    self: null, peers: [], relays: [], filter: { policyVersion: null, defaultAction: 'accept', rules: [] }, hash: 'h', generatedAt: '',
    ...over,
  };
}

const b64 = (k: Uint8Array | null): string | null => (k === null ? null : Buffer.from(k).toString('base64'));

test('peers: self left out, host prefixes, endpoints public first then local, typed values', () => {
  const self = peer('did:self', KEY_A, '10.200.0.2');
  const other = peer('did:b', KEY_B, '10.200.0.3', {
    endpoints: [{ address: '2001:db8::1', port: 41641, priority: 10, source: 'stun' }, { address: '198.51.100.7', port: 41641, priority: 5, source: 'stun' }],
    localEndpoints: ['192.168.1.10:41641', '198.51.100.7:41641'],
    discoKey: KEY_A,
    preferredRelay: 'http://r1/derp',
  });
  assert.deepEqual(peerEndpoints(other), ['[2001:db8::1]:41641', '198.51.100.7:41641', '192.168.1.10:41641']);
  assert.deepEqual(peerEndpoints({ ...other, endpoints: [null, { address: 7 }], localEndpoints: 'x' } as unknown as MapPeer), []);
  const cfg = configFromMap(map({ self, peers: [self, other], relays: [relay('http://r1/derp')] }));
  assert.deepEqual(cfg.problems, []);
  assert.equal(cfg.peers.length, 1);
  const p = cfg.peers[0]!;
  assert.equal(p.did, 'did:b');
  assert.equal(p.publicKeyBase64, KEY_B);
  assert.deepEqual([...p.publicKey], [...Buffer.alloc(32, 2)]);
  assert.deepEqual(p.allowedIps.map(formatPrefix), ['10.200.0.3/32', 'fd0d:e100:d3c5::3/128']);
  assert.equal(b64(p.discoKey), KEY_A);
  assert.deepEqual(p.endpoints.map(String), ['[2001:db8::1]:41641', '198.51.100.7:41641', '192.168.1.10:41641']);
  assert.deepEqual(p.endpoints.map((e) => [e.ip, e.port]), [['2001:db8::1', 41641], ['198.51.100.7', 41641], ['192.168.1.10', 41641]]);
  assert.equal(p.homeRelay, 'http://r1/derp');
  assert.deepEqual(cfg.relays.map((r) => r.url), ['http://r1/derp', 'http://r2/derp']);
  assert.equal(cfg.relays[0]!.stunPort, 3478);
  assert.equal(cfg.filter, null); // no policy record: allow all
});

test('a peer without an endpoint record is a plain WireGuard peer, not a problem', () => {
  const cfg = configFromMap(map({ peers: [peer('did:b', KEY_B, '10.200.0.3')] }));
  assert.deepEqual(cfg.problems, []);
  assert.equal(cfg.peers[0]!.discoKey, null);
  assert.equal(cfg.peers[0]!.homeRelay, null);
  assert.deepEqual(cfg.peers[0]!.endpoints, []);
});

test('hostile preferredRelay "not a url": ignored and reported; the peer and everyone else still come through', () => {
  const cfg = configFromMap(map({
    peers: [peer('did:b', KEY_B, '10.200.0.3', { preferredRelay: 'not a url', discoKey: KEY_A }), peer('did:c', KEY_C, '10.200.0.4')],
  }));
  assert.deepEqual(cfg.peers.map((p) => p.did), ['did:b', 'did:c']);
  assert.equal(cfg.peers[0]!.homeRelay, null);
  assert.equal(b64(cfg.peers[0]!.discoKey), KEY_A);
  assert.equal(cfg.problems.length, 1);
  assert.deepEqual({ ...cfg.problems[0]!, reason: '' }, { peer: 'did:b', field: 'preferredRelay', reason: '', peerSkipped: false });
  assert.match(cfg.problems[0]!.reason, /not an http\(s\) URL/);
});

test('a preferredRelay outside the network\'s relays is never connected to; one inside (normalised) is the home relay', () => {
  const cfg = configFromMap(map({
    relays: [relay('https://relay.example:8443')],
    peers: [
      peer('did:b', KEY_B, '10.200.0.3', { preferredRelay: 'https://attacker.example/derp' }),
      // the same relay, written differently: default path, upper-case host
      peer('did:c', KEY_C, '10.200.0.4', { preferredRelay: 'https://RELAY.example:8443/derp' }),
      peer('did:d', KEY_D, '10.200.0.5', { preferredRelay: 'HTTP://r2' }),
    ],
  }));
  assert.deepEqual(cfg.relays.map((r) => r.url), ['https://relay.example:8443/derp', 'http://r2/derp']);
  assert.equal(cfg.peers[0]!.homeRelay, null);
  assert.equal(cfg.peers[1]!.homeRelay, 'https://relay.example:8443/derp');
  assert.equal(cfg.peers[2]!.homeRelay, 'http://r2/derp');
  assert.deepEqual(cfg.problems.map((p) => [p.peer, p.field]), [['did:b', 'preferredRelay']]);
  assert.match(cfg.problems[0]!.reason, /not one of the network's relays/);
  for (const url of [...cfg.relays.map((r) => r.url), ...cfg.peers.map((p) => p.homeRelay)]) {
    assert.ok(url === null || !url.includes('attacker'));
  }
});

test('relay URLs must be http(s) with a host; others are dropped and reported', () => {
  assert.equal(parseRelayUrl('http://r1'), 'http://r1/derp');
  assert.equal(parseRelayUrl('https://r1:443/x'), 'https://r1/x');
  for (const bad of ['not a url', 'ftp://r1/derp', 'file:///etc/passwd', 'ws://r1/derp', 'http://', 'mailto:a@b', '', 42, null]) {
    assert.equal(parseRelayUrl(bad), null, String(bad));
  }
  const cfg = configFromMap(map({
    relays: [relay('file:///etc/passwd'), relay('http://ok/derp', { stunPort: 70000 }), relay('http://stun-only/derp', { stunOnly: true })],
    network: { ...map({}).network, defaultRelays: ['javascript:alert(1)', 'http://ok'] },
  }));
  assert.deepEqual(cfg.relays, [{ url: 'http://ok/derp', region: 'x' }]);
  assert.deepEqual(cfg.problems.map((p) => [p.peer, p.field]), [[null, 'relays'], [null, 'relays'], [null, 'defaultRelays']]);
});

test('a relay record\'s TLS fingerprint reaches the relay config; a malformed one drops that relay (never an unpinned fallback)', () => {
  const fp = 'Mcq3XTEcS2uEt-ffYyTMiByHtWdwM2R0pA8UDNTWe18';
  const cfg = configFromMap(map({
    relays: [relay('https://pinned:3340/derp', { fingerprint: fp }), relay('https://bad/derp', { fingerprint: 'not-a-pin' })],
    network: { ...map({}).network, defaultRelays: [] },
  }));
  assert.deepEqual(cfg.relays, [{ url: 'https://pinned:3340/derp', stunPort: 3478, region: 'x', fingerprint: fp }]);
  assert.deepEqual(cfg.problems.map((p) => [p.peer, p.field]), [[null, 'relays']]);
});

test('a bad disco key makes a plain WireGuard peer; bad endpoints are dropped, good ones kept', () => {
  const cfg = configFromMap(map({
    peers: [peer('did:b', KEY_B, '10.200.0.3', {
      discoKey: 'AAAA',
      endpoints: [
        { address: 'relay.example', port: 41641, priority: 10, source: 'stun' },
        { address: '198.51.100.7', port: 0, priority: 9, source: 'stun' },
        { address: '198.51.100.8', port: 41641, priority: 8, source: 'stun' },
      ],
      localEndpoints: ['not an endpoint', '192.168.1.10:99999', '192.168.1.10:41641', '[fe80::1%eth0]:41641'],
    })],
  }));
  const p = cfg.peers[0]!;
  assert.equal(p.discoKey, null);
  assert.deepEqual(p.endpoints.map(String), ['198.51.100.8:41641', '192.168.1.10:41641']);
  assert.deepEqual(cfg.problems.map((x) => x.field), ['discoKey', 'endpoints', 'endpoints', 'localEndpoints', 'localEndpoints', 'localEndpoints']);
  assert.ok(cfg.problems.every((x) => x.peer === 'did:b' && !x.peerSkipped));
});

test('too many endpoints: the first MAX_PEER_ENDPOINTS are used, the rest reported', () => {
  const localEndpoints = Array.from({ length: MAX_PEER_ENDPOINTS + 5 }, (_, i) => `192.168.${i >> 8}.${i & 255}:41641`);
  const cfg = configFromMap(map({ peers: [peer('did:b', KEY_B, '10.200.0.3', { localEndpoints })] }));
  assert.equal(cfg.peers[0]!.endpoints.length, MAX_PEER_ENDPOINTS);
  assert.equal(cfg.problems.length, 5);
});

test('a peer with a malformed key is left out alone: the good peers next to it come through', () => {
  const cfg = configFromMap(map({
    peers: [
      peer('did:b', KEY_B, '10.200.0.3'),
      peer('did:bad', 'bm90IGEga2V5', '10.200.0.9'), // base64, but not 32 bytes
      peer('did:bad2', `${KEY_C.slice(0, 42)}B=`, '10.200.0.10'), // non-canonical base64
      peer('did:c', KEY_C, '10.200.0.4'),
      peer('did:dup', KEY_C, '10.200.0.11'), // the same key again
      peer('did:noip', KEY_D, 'nope', { meshIP6: '' }),
      peer('did:me-too', KEY_A, '10.200.0.12'), // our own key under another DID
    ],
    self: peer('did:self', KEY_A, '10.200.0.2'),
  }));
  assert.deepEqual(cfg.peers.map((p) => p.did), ['did:b', 'did:c']);
  const skipped = cfg.problems.filter((p) => p.peerSkipped).map((p) => [p.peer, p.field]);
  assert.deepEqual(skipped, [['did:bad', 'wireguardKey'], ['did:bad2', 'wireguardKey'], ['did:dup', 'wireguardKey'], ['did:noip', 'meshIP'], ['did:me-too', 'wireguardKey']]);
});

const junk = fc.oneof(
  fc.string(),
  fc.constantFrom('', 'not a url', 'http://', 'http://[::1', '::', '[::1]:0', '1.2.3.4:65536', 'AAAA', KEY_A, 'javascript:x', '%', 'http://r1/derp'),
  fc.integer(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);

test('property: configFromMap never throws on junk in what peers write, and keeps every good peer', () => {
  fc.assert(
    fc.property(
      fc.record({ wireguardKey: junk, meshIP: junk, meshIP6: junk, discoKey: junk, preferredRelay: junk, did: junk }),
      fc.array(fc.oneof(junk, fc.record({ address: junk, port: junk, priority: junk, source: junk })), { maxLength: 4 }),
      fc.oneof(junk, fc.array(junk, { maxLength: 4 })),
      fc.array(fc.oneof(junk, fc.record({ url: junk, stunPort: junk, region: junk, stunOnly: junk })), { maxLength: 3 }),
      (fields, endpoints, localEndpoints, relays) => {
        const bad = { ...peer('did:x', KEY_A, '10.200.0.9'), ...fields, endpoints, localEndpoints } as unknown as MapPeer;
        const good = peer('did:good', KEY_B, '10.200.0.3', { preferredRelay: 'http://r2/derp' });
        const cfg = configFromMap(map({ peers: [good, bad], relays: relays as unknown as MapRelay[] }));
        assert.ok(Array.isArray(peerEndpoints(bad))); // the agent's status shows them as text
        const g = cfg.peers.find((p) => p.did === 'did:good');
        assert.ok(g);
        assert.equal(g.homeRelay, 'http://r2/derp');
        const allowed = new Set(cfg.relays.map((r) => r.url));
        for (const p of cfg.peers) {
          assert.equal(p.publicKey.length, 32);
          assert.ok(p.discoKey === null || p.discoKey.length === 32);
          assert.ok(p.homeRelay === null || allowed.has(p.homeRelay));
          assert.ok(p.allowedIps.length > 0);
        }
        for (const r of cfg.relays) assert.ok(/^https?:\/\/[^/]+\//.test(r.url), r.url);
      },
    ),
    { numRuns: 400 },
  );
});

test('ACL: compiled rules become a filter spec the engine accepts; a side that selects nothing matches nothing', () => {
  const spec = filterSpecFromAcl({
    policyVersion: 3,
    defaultAction: 'drop',
    rules: [
      { action: 'accept', src: { any: false, peers: [KEY_A], cidrs: ['10.200.0.2/32'] }, dst: { any: false, peers: [KEY_B], cidrs: ['10.200.0.3/32'] }, proto: 'tcp', srcPorts: null, dstPorts: [{ first: 22, last: 22 }, { first: 8000, last: 9000 }] },
      { action: 'accept', src: { any: false, peers: [], cidrs: [] }, dst: { any: true, peers: [], cidrs: [] }, proto: '*', srcPorts: null, dstPorts: null },
      { action: 'accept', src: { any: true, peers: [], cidrs: [] }, dst: { any: false, peers: [], cidrs: [] }, proto: '*', srcPorts: null, dstPorts: null },
    ],
  });
  assert.ok(spec);
  assert.deepEqual(spec.rules[0]!.dstPorts, ['22', '8000-9000']);
  assert.deepEqual(spec.rules[0]!.srcPeers, [KEY_A]);
  assert.equal(spec.rules[1]!.dstCidrs, '*');
  assert.deepEqual(spec.rules[1]!.srcPeers, []);
  assert.deepEqual(spec.rules[1]!.srcCidrs, []);
  assert.deepEqual(spec.rules[2]!.dstCidrs, []);
  const compiled = compileFilter(spec);
  assert.equal(compiled.rules.length, 3);
  assert.equal(compiled.defaultAction, 'drop');
  // The empty sides really match nothing: a UDP packet from KEY_B to 10.200.0.2 is dropped.
  const f = new PacketFilter();
  f.setPolicy(compiled);
  const pkt = udp4('10.200.0.3', '10.200.0.2', 5000, 53);
  assert.equal(f.inbound(pkt, 0, pkt.length, KEY_B, () => true, 0), Verdict.DropAcl);
});

/** A minimal IPv4/UDP packet (checksums left zero). */
function udp4(src: string, dst: string, sport: number, dport: number): Uint8Array {
  const b = new Uint8Array(28);
  b[0] = 0x45;
  b[3] = 28;
  b[8] = 64;
  b[9] = 17;
  b.set(src.split('.').map(Number), 12);
  b.set(dst.split('.').map(Number), 16);
  b[20] = sport >> 8;
  b[21] = sport & 0xff;
  b[22] = dport >> 8;
  b[23] = dport & 0xff;
  b[25] = 8;
  return b;
}

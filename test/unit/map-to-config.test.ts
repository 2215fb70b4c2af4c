import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromMap, filterSpecFromAcl, peerEndpoints } from '../../src/daemon/map-to-config.js';
import { compileFilter } from '../../src/engine/filter/index.js';
import type { MapPeer, NetworkMap } from '../../src/control/netmap.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');

function peer(did: string, key: string, ip: string, extra: Partial<MapPeer> = {}): MapPeer {
  return {
    did, wireguardKey: key, meshIP: ip, meshIP6: `fd0d:e100:d3c5::${ip.split('.')[3]}`, owner: did, hostname: null, os: null,
    capabilities: [], endpoints: [], localEndpoints: [], natType: 'unknown', discoKey: null, preferredRelay: null,
    endpointUpdatedAt: null, online: false, expiresAt: null, ...extra,
  };
}

function map(over: Partial<NetworkMap>): NetworkMap {
  return {
    formatVersion: 1, networkId: 'n', anchor: 'did:a', epoch: 0,
    network: { name: 'x', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', listenPort: 51820, dnsServers: [], magicDNSSuffix: null, anchorEndpoint: null, defaultRelays: ['http://r2/derp'] },
    self: null, peers: [], relays: [], filter: { policyVersion: null, defaultAction: 'accept', rules: [] }, hash: 'h', generatedAt: '',
    ...over,
  };
}

test('peers: self left out, host prefixes, endpoints public first then local, no disco key kept empty', () => {
  const self = peer('did:self', KEY_A, '10.200.0.2');
  const other = peer('did:b', KEY_B, '10.200.0.3', {
    endpoints: [{ address: '2001:db8::1', port: 41641, priority: 10, source: 'stun' }, { address: '198.51.100.7', port: 41641, priority: 5, source: 'stun' }],
    localEndpoints: ['192.168.1.10:41641', '198.51.100.7:41641'],
    discoKey: KEY_A,
    preferredRelay: 'http://r1/derp',
  });
  assert.deepEqual(peerEndpoints(other), ['[2001:db8::1]:41641', '198.51.100.7:41641', '192.168.1.10:41641']);
  const cfg = configFromMap(map({ self, peers: [self, other], relays: [{ url: 'http://r1/derp', region: 'x', regionName: null, stunPort: 3478, stunOnly: false, latitude: null, longitude: null }] }));
  assert.equal(cfg.peers.length, 1);
  assert.deepEqual(cfg.peers[0]!.allowedIps, ['10.200.0.3/32', 'fd0d:e100:d3c5::3/128']);
  assert.equal(cfg.peers[0]!.homeRelay, 'http://r1/derp');
  assert.deepEqual(cfg.relays.map((r) => r.url), ['http://r1/derp', 'http://r2/derp']);
  assert.equal(cfg.filter, null); // no policy record: allow all
});

test('ACL: compiled rules become a filter spec the engine accepts; a side that selects nothing matches nothing', () => {
  const spec = filterSpecFromAcl({
    policyVersion: 3,
    defaultAction: 'drop',
    rules: [
      { action: 'accept', src: { any: false, peers: [KEY_A], cidrs: ['10.200.0.2/32'] }, dst: { any: false, peers: [KEY_B], cidrs: ['10.200.0.3/32'] }, proto: 'tcp', srcPorts: null, dstPorts: [{ first: 22, last: 22 }, { first: 8000, last: 9000 }] },
      { action: 'accept', src: { any: false, peers: [], cidrs: [] }, dst: { any: true, peers: [], cidrs: [] }, proto: '*', srcPorts: null, dstPorts: null },
    ],
  });
  assert.ok(spec);
  assert.deepEqual(spec.rules[0]!.dstPorts, ['22', '8000-9000']);
  assert.deepEqual(spec.rules[0]!.srcPeers, [KEY_A]);
  assert.equal(spec.rules[1]!.dstCidrs, '*');
  assert.deepEqual(spec.rules[1]!.srcCidrs, ['0.0.0.0/32']);
  const compiled = compileFilter(spec);
  assert.equal(compiled.rules.length, 2);
  assert.equal(compiled.defaultAction, 'drop');
});

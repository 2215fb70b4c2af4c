/** The daemon's name table from a network map: this node and its peers, the owner's suffix or the default. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameTableFromMap } from '../../src/daemon/map-to-dns.js';
import type { MapPeer, NetworkMap } from '../../src/control/netmap.js';

function peer(did: string, ip: string, hostname: string | null): MapPeer {
  return {
    did, wireguardKey: 'k', meshIP: ip, meshIP6: `fd0d:e100:d3c5::${ip.split('.')[3]}`, owner: did, hostname, os: null,
    capabilities: [], endpoints: [], localEndpoints: [], natType: 'unknown', discoKey: null, preferredRelay: null,
    endpointUpdatedAt: null, online: false, expiresAt: null,
  };
}

function map(magicDNSSuffix: string | null): NetworkMap {
  const self = peer('did:b', '10.200.0.2', 'laptop');
  return {
    formatVersion: 1, networkId: 'n', anchor: 'did:a', epoch: 0,
    network: { name: 'Home Lab', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', listenPort: 51820, dnsServers: [], magicDNSSuffix, anchorEndpoint: null, defaultRelays: [] },
    self, peers: [peer('did:a', '10.200.0.1', 'laptop'), peer('did:c', '10.200.0.3', null)], relays: [], filter: { policyVersion: null, defaultAction: 'accept', rules: [] }, hash: 'h', generatedAt: '',
  };
}

test('every node, this one included, under the default suffix; the clash by DID order', () => {
  const t = nameTableFromMap(map(null));
  assert.equal(t.suffix, 'home-lab.internal');
  assert.deepEqual(t.entries.map((e) => [e.did, e.fqdn, e.ipv4]), [
    ['did:a', 'laptop.home-lab.internal', '10.200.0.1'],
    ['did:b', 'laptop-2.home-lab.internal', '10.200.0.2'],
    ['did:c', `${t.entries[2]!.label}.home-lab.internal`, '10.200.0.3'],
  ]);
  assert.match(t.entries[2]!.label, /^node-[0-9a-f]{8}$/);
  assert.deepEqual(t.reverseZones, ['200.10.in-addr.arpa', '5.c.3.d.0.0.1.e.d.0.d.f.ip6.arpa']);
});

test('the owner’s magicDNSSuffix wins', () => {
  assert.equal(nameTableFromMap(map('Mesh.Corp.Example')).entries[0]!.fqdn, 'laptop.mesh.corp.example');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerChangeLog, peerChangesRoute } from '../../src/daemon/peer-changes.js';
import type { MapPeer, NetworkMap } from '../../src/control/netmap.js';

function peer(did: string, localEndpoints: string[]): MapPeer {
  return {
    did, wireguardKey: `k-${did}`, meshIP: '10.200.0.9', meshIP6: 'fd0d:e100:d3c5::9', owner: did, hostname: null, os: null,
    capabilities: [], endpoints: [], localEndpoints, natType: 'unknown', discoKey: null, preferredRelay: null,
    endpointUpdatedAt: null, online: false, expiresAt: null,
  };
}

function map(peers: MapPeer[]): NetworkMap {
  return {
    formatVersion: 1, networkId: 'n', anchor: 'did:a', epoch: 0,
    network: { name: 'x', meshCIDR: '10.200.0.0/16', meshCIDR6: 'fd0d:e100:d3c5::/48', listenPort: 51820, dnsServers: [], magicDNSSuffix: null, anchorEndpoint: null, defaultRelays: [] },
    self: peer('did:self', []), peers: [peer('did:self', []), ...peers], relays: [], filter: { policyVersion: null, defaultAction: 'accept', rules: [] }, hash: 'h', generatedAt: '',
  };
}

test('peer changes: an endpoint keeps the time it first appeared; applied once a later apply covers its map', () => {
  let now = 1000;
  const log = new PeerChangeLog(() => now);
  log.noteMap(map([peer('did:b', ['198.51.100.2:1'])]));
  const seq1 = log.seq;
  now = 2000;
  log.noteMap(map([peer('did:b', ['198.51.100.2:1', '198.51.100.9:1'])]));
  now = 2500;
  log.noteApplied(seq1); // an apply that started before the second map does not cover it
  let b = log.of('did:b');
  assert.equal(b.inMap, true);
  assert.deepEqual(b.endpoints['198.51.100.2:1'], { mapAt: 1000, appliedAt: 2500 });
  assert.deepEqual(b.endpoints['198.51.100.9:1'], { mapAt: 2000, appliedAt: null });
  now = 3000;
  log.noteApplied(log.seq);
  b = log.of('did:b');
  assert.deepEqual(b.endpoints['198.51.100.9:1'], { mapAt: 2000, appliedAt: 3000 });
  assert.equal(log.of('did:self').inMap, false, 'this device is no peer of its own');
});

test('peer changes: a peer that leaves the map has its time of leaving; coming back clears it', () => {
  let now = 1;
  const log = new PeerChangeLog(() => now);
  log.noteMap(map([peer('did:b', []), peer('did:c', [])]));
  now = 5;
  log.noteMap(map([peer('did:c', [])]));
  assert.deepEqual(log.of('did:b'), { did: 'did:b', inMap: false, endpoints: {}, left: { mapAt: 5, appliedAt: null } });
  now = 7;
  log.noteApplied(log.seq);
  assert.deepEqual(log.of('did:b').left, { mapAt: 5, appliedAt: 7 });
  assert.equal(log.of('did:never').left, null);
  log.noteMap(map([peer('did:b', []), peer('did:c', [])]));
  assert.equal(log.of('did:b').inMap, true);
  assert.equal(log.of('did:b').left, null);
});

test('peer changes: bounded under churn, and the route refuses a body without a DID', () => {
  const log = new PeerChangeLog();
  for (let i = 0; i < 2000; i++) log.noteMap(map([peer(`did:${i}`, [`198.51.100.1:${i}`])])); // each map: a new peer, the last one gone
  assert.equal(log.of('did:0').left, null, 'the oldest departures are forgotten');
  assert.equal(log.of('did:1998').left?.mapAt !== undefined, true);
  assert.throws(() => peerChangesRoute(log, {}), { code: 'E_USAGE' });
  assert.throws(() => peerChangesRoute(log, null), { code: 'E_USAGE' });
  assert.equal(peerChangesRoute(log, { did: 'did:1999' }).inMap, true);
});

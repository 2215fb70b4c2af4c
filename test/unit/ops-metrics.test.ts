/**
 * Metrics and peer lookups without a mesh: the daemon's Prometheus exposition (its own
 * Registry, on the control socket and on --metrics-listen) parsed by a strict parser that
 * refuses malformed text; how `ping`/`ip`/`whois` find a peer and say why one is missing;
 * what the ACL lets this device send a peer.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { register as globalRegistry } from 'prom-client';
import { runDaemon } from '../../src/daemon/daemon.js';
import { socketPath } from '../../src/daemon/api.js';
import { silentLogger } from '../../src/daemon/log.js';
import { DaemonMetrics, parseMetricsListen } from '../../src/daemon/metrics.js';
import { pingRoute, type PingDeps } from '../../src/daemon/ping.js';
import type { DataPlane } from '../../src/engine/dataplane.js';
import type { AgentStatus } from '../../src/daemon/agent-types.js';
import { aclReach, DepartedPeers, departedNode, findPeer, unknownPeerError } from '../../src/daemon/peer-query.js';
import { compileAcl } from '../../src/control/acl.js';
import type { MapPeer, NetworkMap } from '../../src/control/netmap.js';
import { newDropCounters } from '../../src/engine/wireguard/counters.js';
import { ensurePrivateDir } from '../../src/identity/state-files.js';
import { tempDir } from '../helpers/cli.js';
import { parsePrometheusText, sampleValue } from '../helpers/prom-text.js';

function fakeStatus(rx: number): AgentStatus {
  const drops = newDropCounters();
  const firstReason = Object.keys(drops)[0] as keyof typeof drops;
  drops[firstReason] = 3;
  return {
    identity: { did: 'did:jwk:self', wireguardKey: 'k', meshIP: '10.200.0.2', meshIP6: 'fd0d:e100:d3c5::2' },
    network: { id: 'net', name: 'lab', anchor: 'did:jwk:owner', epoch: 2, endpoint: 'http://x', mapHash: 'h', mapSource: 'dwn' },
    dataplane: {
      relays: [{ url: 'https://relay.example/derp', home: true, state: 'connected', packetsSent: 0, packetsReceived: 0, packetsDropped: 0 }],
      counters: { engine: { drops }, magicsock: { discoBad: 1, discoUnknownSender: 0, unknownDatagrams: 4, relayUnknownPeer: 0, relayDropped: 0, unroutable: 0 } },
    },
    control: { connected: true, refreshes: 7, skipped: { invalid: 1, decryptFailed: 0, staleEpoch: 2 } },
    filter: { accepted: 10, acceptedReply: 0, aclDrop: 5, spoof: 1, malformed: 0, fragment: 0, outbound: 0, outboundMalformed: 0, flowEvictions: 0, policyVersion: 1 },
    relayServer: null,
    peers: [
      { did: 'did:jwk:b', hostname: 'b "quoted"\\name', meshIP: '10.200.0.3', meshIP6: 'fd0d::3', wireguardKey: 'kb', online: true, path: 'direct', endpoint: '203.0.113.5:51820', endpoints: [], relay: null, latencyMs: 1.5, lastHandshake: new Date(1_700_000_000_000).toISOString(), rxBytes: rx, txBytes: 2 * rx, handshakes: 2 },
      { did: 'did:jwk:c', hostname: null, meshIP: '10.200.0.4', meshIP6: 'fd0d::4', wireguardKey: 'kc', online: false, path: 'relay', endpoint: null, endpoints: [], relay: 'https://relay.example/derp', latencyMs: null, lastHandshake: null, rxBytes: 0, txBytes: 0, handshakes: 0 },
    ],
  } as unknown as AgentStatus;
}

function get(opts: { socketPath?: string; port?: number; path: string }): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...(opts.socketPath ? { socketPath: opts.socketPath } : { host: '127.0.0.1', port: opts.port }), path: opts.path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics', () => {
  test('the strict parser refuses what Prometheus would refuse', () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 3\na_total{x="2"} 4\n# TYPE g gauge\ng -1.5e3\ng2 NaN\n';
    const f = parsePrometheusText(ok);
    assert.equal(sampleValue(f, 'a_total', { x: '2' }), 4);
    assert.equal(sampleValue(f, 'g'), -1500);
    for (const bad of [
      'a 1', // no final newline
      'a{x=1} 1\n', // unquoted
      'a{x="\\q"} 1\n', // bad escape
      'a{x="1",x="2"} 1\n', // label twice
      '1a 1\n', // bad name
      'a one\n', // not a number
      '# TYPE a counter\na -1\n', // negative counter
      '# TYPE a gauge\n# TYPE a gauge\na 1\n', // TYPE twice
      'a 1\n# TYPE a gauge\n', // TYPE after samples
      'a 1\nb 1\na{x="1"} 2\n', // family split
      'a 1\na 2\n', // same series twice
      '# TYPE a wobbly\na 1\n',
    ]) {
      assert.throws(() => parsePrometheusText(bad), Error, JSON.stringify(bad));
    }
  });

  test('one snapshot per scrape: per-peer bytes, handshakes, path, latency, drops, relay/DWN state, refreshes, skips', async () => {
    let rx = 100;
    const m = new DaemonMetrics(() => fakeStatus(rx));
    const first = parsePrometheusText((await m.render()).body);
    rx = 5000;
    const r = await m.render();
    assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
    const f = parsePrometheusText(r.body);
    const b = { peer: '10.200.0.3' };
    assert.equal(sampleValue(first, 'meshd_peer_rx_bytes_total', b), 100);
    assert.equal(sampleValue(f, 'meshd_peer_rx_bytes_total', b), 5000);
    assert.equal(sampleValue(f, 'meshd_peer_tx_bytes_total', b), 10000);
    assert.equal(f.get('meshd_peer_rx_bytes_total')?.type, 'counter');
    assert.equal(sampleValue(f, 'meshd_peer_rx_bytes_total', { peer: '10.200.0.3', name: 'b "quoted"\\name' }), 5000, 'label escaping');
    assert.equal(sampleValue(f, 'meshd_peer_handshakes_total', b), 2);
    assert.equal(sampleValue(f, 'meshd_peer_path', { ...b, path: 'direct' }), 1);
    assert.equal(sampleValue(f, 'meshd_peer_path', { ...b, path: 'relay' }), 0);
    assert.equal(sampleValue(f, 'meshd_peer_path', { peer: '10.200.0.4', path: 'relay' }), 1);
    assert.equal(sampleValue(f, 'meshd_peer_latency_seconds', b), 0.0015);
    assert.equal(sampleValue(f, 'meshd_peer_latency_seconds', { peer: '10.200.0.4' }), undefined);
    assert.equal(sampleValue(f, 'meshd_peer_online', { peer: '10.200.0.4' }), 0);
    assert.equal(sampleValue(f, 'meshd_drops_total', { layer: 'filter', reason: 'acl' }), 5);
    assert.equal(sampleValue(f, 'meshd_drops_total', { layer: 'filter', reason: 'spoofed_source' }), 1);
    assert.equal(sampleValue(f, 'meshd_drops_total', { layer: 'magicsock', reason: 'unknown_datagram' }), 4);
    assert.ok(f.get('meshd_drops_total')!.samples.some((s) => s.labels.layer === 'wireguard' && s.value === 3));
    assert.equal(sampleValue(f, 'meshd_relay_connected', { relay: 'https://relay.example/derp', home: 'true' }), 1);
    assert.equal(sampleValue(f, 'meshd_dwn_connected'), 1);
    assert.equal(sampleValue(f, 'meshd_map_refreshes_total'), 7);
    assert.equal(sampleValue(f, 'meshd_record_skips_total', { reason: 'staleEpoch' }), 2);
    assert.equal(sampleValue(f, 'meshd_network_epoch'), 2);
    // nothing lands in prom-client's global default registry
    assert.equal((await globalRegistry.getMetricsAsJSON()).filter((x) => x.name.startsWith('meshd_')).length, 0);
    // two daemons in one process do not clash (no global registry)
    const m2 = new DaemonMetrics(() => fakeStatus(1));
    assert.equal(sampleValue(parsePrometheusText((await m2.render()).body), 'meshd_peer_rx_bytes_total', b), 1);
  });

  test('served on the control socket at /metrics and on --metrics-listen; the listener closes with the daemon', async (t) => {
    const d = tempDir();
    t.after(d.cleanup);
    const home = join(d.path, 'h');
    ensurePrivateDir(home);
    const metrics = new DaemonMetrics(() => fakeStatus(42));
    const agent = { start: async () => {}, stop: async () => {}, status: () => ({}), routes: () => ({ 'GET /metrics': () => metrics.render() }) };
    let port = 0;
    const log = { ...silentLogger, info: (event: string, fields?: Record<string, unknown>) => void (event === 'metrics.serving' && (port = Number(fields?.port))) };
    const h = await runDaemon({ home, log, agent, handleSignals: false, metricsListen: { host: '127.0.0.1', port: 0 } });
    t.after(() => h.stop('test'));
    const viaSocket = await get({ socketPath: socketPath(home), path: '/metrics' });
    assert.equal(viaSocket.status, 200);
    assert.match(viaSocket.type, /^text\/plain/);
    assert.equal(sampleValue(parsePrometheusText(viaSocket.body), 'meshd_peer_rx_bytes_total', { peer: '10.200.0.3' }), 42);
    assert.ok(port > 0, 'metrics.serving was not logged with the port');
    const viaTcp = await get({ port, path: '/metrics' });
    assert.equal(viaTcp.status, 200);
    assert.equal(sampleValue(parsePrometheusText(viaTcp.body), 'meshd_peer_tx_bytes_total', { peer: '10.200.0.3' }), 84);
    assert.equal((await get({ port, path: '/v0/status' })).status, 404, 'only /metrics on the TCP listener');
    await h.stop('test');
    await assert.rejects(get({ port, path: '/metrics' }));
  });
});

describe('peer lookups', () => {
  const didOf = (n: number) => `did:jwk:${Buffer.from(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: Buffer.alloc(32, n).toString('base64url') })).toString('base64url')}`;
  const peer = (n: number, hostname: string | null, extra: Partial<MapPeer> = {}): MapPeer =>
    ({ did: didOf(n), wireguardKey: `key${n}=`, meshIP: `10.200.0.${n}`, meshIP6: `fd0d:e100:d3c5::${n}`, owner: 'did:jwk:owner', hostname, os: 'linux', capabilities: [], endpoints: [], localEndpoints: [], natType: 'unknown', discoKey: null, preferredRelay: null, endpointUpdatedAt: null, online: true, expiresAt: null, ...extra }) as MapPeer;
  const self = peer(2, 'me');
  const nodes = [self, peer(3, 'Web'), peer(4, 'db'), peer(5, 'twin'), peer(6, 'twin')];
  const map = { self, peers: nodes.slice(1), filter: compileAcl(undefined, []), anchor: 'did:jwk:owner', relays: [{ url: 'https://r', region: 'fra' }] } as unknown as NetworkMap;

  test('by host name (any case), mesh IP (v4, v6 in any spelling) or DID; self; ambiguous names refused', () => {
    assert.equal(findPeer(map, 'web')?.peer.meshIP, '10.200.0.3');
    assert.equal(findPeer(map, '10.200.0.4')?.peer.hostname, 'db');
    assert.equal(findPeer(map, 'fd0d:e100:d3c5:0::4')?.peer.hostname, 'db');
    assert.equal(findPeer(map, didOf(3))?.peer.hostname, 'Web');
    assert.equal(findPeer(map, 'me')?.self, true);
    assert.equal(findPeer(map, 'nobody'), undefined);
    assert.equal(findPeer(map, '10.200.0.99'), undefined);
    assert.throws(() => findPeer(map, 'twin'), /names 2 peers/);
  });

  test('a peer that is not in the map: removed or expired by the owner, or unknown', () => {
    const recs = [
      { did: 'did:jwk:gone', meshIP: '10.200.0.9', meshIP6: 'fd0d::9', owner: 'o', status: 'revoked' as const, addedAt: '2026-01-01T00:00:00Z' },
      { did: 'did:jwk:old', meshIP: '10.200.0.10', meshIP6: 'fd0d::a', owner: 'o', status: 'active' as const, addedAt: '2026-01-01T00:00:00Z', expiresAt: '2026-02-01T00:00:00Z' },
    ];
    const now = Date.parse('2026-11-29T00:00:00Z');
    assert.equal(unknownPeerError('10.200.0.9', departedNode(recs, '10.200.0.9', now)).code, 'E_PEER_REMOVED');
    assert.match(unknownPeerError('did:jwk:old', departedNode(recs, 'did:jwk:old', now)).message, /expired/);
    assert.equal(unknownPeerError('x', departedNode(recs, 'x', now)).code, 'E_PEER_UNKNOWN');
    // what the maps themselves say: a peer that was in one map and not in the next left
    const gone = new DepartedPeers();
    gone.update(undefined, nodes);
    assert.equal(gone.find('10.200.0.3'), undefined);
    gone.update(nodes, nodes.filter((p) => p.hostname !== 'Web'), now);
    const e = unknownPeerError('10.200.0.3', gone.find('10.200.0.3'));
    assert.equal(e.code, 'E_PEER_REMOVED');
    assert.match(e.message, /left the network at 2026-11-29T00:00:00\.000Z/);
    gone.update(nodes.filter((p) => p.hostname !== 'Web'), nodes); // back again
    assert.equal(gone.find('10.200.0.3'), undefined);
  });

  test('what the ACL lets this device send a peer: all, some, none', () => {
    const acl = (rules: unknown[], defaultAction: 'accept' | 'drop' = 'drop') =>
      compileAcl({ version: 3, defaultAction, groups: {}, rules } as never, nodes.map((n) => ({ did: n.did, owner: n.owner, wireguardKey: n.wireguardKey, meshIPs: [n.meshIP, n.meshIP6] })));
    const web = nodes[1]!;
    assert.equal(aclReach(acl([{ action: 'accept', src: ['*'], dst: ['*'] }]), self, web), 'all');
    assert.equal(aclReach(acl([{ action: 'accept', src: [self.did], dst: [web.did], proto: 'tcp', dstPorts: ['22'] }]), self, web), 'some');
    assert.equal(aclReach(acl([{ action: 'accept', src: [nodes[2]!.did], dst: [web.did] }]), self, web), 'none');
    assert.equal(aclReach(acl([{ action: 'drop', src: [self.did], dst: ['*'] }], 'accept'), self, web), 'none');
  });

  test('the ping route: why not, before any packet — bad body, this device, unknown, ACL, offline; else the data plane pings', async () => {
    const pinged: string[] = [];
    const dp = { ping: async (key: string) => (pinged.push(key), { sent: 'relay', reply: { via: 'relay', address: 'https://r/derp', latencyMs: 3 } }) } as unknown as DataPlane;
    const deps = (over: Partial<PingDeps> = {}, m: NetworkMap = map): PingDeps => ({ map: () => m, departed: () => undefined, online: () => true, dataplane: () => dp, ...over });
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);
    assert.equal(await code(pingRoute(deps(), { peer: 42 })), 'E_USAGE');
    assert.equal(await code(pingRoute(deps(), { peer: 'web', timeoutMs: 1e9 })), 'E_USAGE');
    assert.equal(await code(pingRoute(deps(), { peer: 'me' })), 'E_USAGE');
    assert.equal(await code(pingRoute(deps(), { peer: 'nobody' })), 'E_PEER_UNKNOWN');
    assert.equal(await code(pingRoute(deps({ online: () => false }), { peer: 'web' })), 'E_PEER_OFFLINE');
    assert.equal(await code(pingRoute(deps({ dataplane: () => undefined }), { peer: 'web' })), 'E_DAEMON');
    const closed = { ...map, filter: compileAcl({ version: 9, defaultAction: 'drop', groups: {}, rules: [] } as never, []) } as NetworkMap;
    assert.equal(await code(pingRoute(deps({}, closed), { peer: 'web' })), 'E_ACL_DENIED');
    assert.deepEqual(pinged, [], 'nothing was pinged for a refused request');
    const a = await pingRoute(deps(), { peer: '10.200.0.3' });
    assert.deepEqual(pinged, ['key3=']);
    assert.equal(a.peer.hostname, 'Web');
    assert.equal(a.acl, 'all');
    assert.deepEqual(a.reply, { via: 'relay', address: 'https://r/derp', latencyMs: 3, region: 'fra' }, 'the relay named by its region (URLs compared normalised)');
  });
});

test('--metrics-listen: address and port, loopback by default, refused when malformed', () => {
  assert.deepEqual(parseMetricsListen('127.0.0.1:9200'), { host: '127.0.0.1', port: 9200, text: '127.0.0.1:9200' });
  assert.equal(parseMetricsListen(':9200').host, '127.0.0.1');
  assert.equal(parseMetricsListen('127.0.0.1').port, 9101);
  assert.equal(parseMetricsListen('[::1]:9200').text, '[::1]:9200');
  assert.throws(() => parseMetricsListen('127.0.0.1:99999'), /is not ADDR:PORT/);
});

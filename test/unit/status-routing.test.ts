/**
 * The routing lines of `meshd status`: advertised routes with the owner's approval, the exit node
 * offered and the one in use, within 100 columns; nothing when the node does no routing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRoutingStatus, STATUS_COLUMNS } from '../../src/cli/commands/routing-format.js';
import { formatDaemonStatus } from '../../src/cli/commands/status.js';
import { shortDid } from '../../src/cli/commands/peer-format.js';
import type { AgentPeerStatus, AgentRoutingStatus, AgentStatus } from '../../src/daemon/agent-types.js';

const LONG_DID = `did:jwk:${'eyJrdHkiOiJPS1AiLCJjcnYiOiJFZDI1NTE5IiwieCI6I'.repeat(4)}Xzq1w9K0`;
const NONE: AgentRoutingStatus = { advertisedRoutes: [], routes: [], advertisesExitNode: false, advertisesExitNodeIPv6: false, exitNodeApproved: false, exitNodeWanted: null, exitNode: null, exitNodeIPv6: null, error: null };

function peer(over: Partial<AgentPeerStatus>): AgentPeerStatus {
  return {
    did: LONG_DID, hostname: 'gateway', dnsName: 'gateway.lab.internal', meshIP: '10.200.7.9', meshIP6: 'fd0d:e100:d3c5::9', wireguardKey: 'k', online: true,
    path: 'direct', endpoint: '192.0.2.1:41641', endpoints: [], relay: null, latencyMs: 1, lastHandshake: null, rxBytes: 0, txBytes: 0, handshakes: 1, ...over,
  };
}

function within100(lines: string[]): void {
  for (const l of lines) assert.ok(l.length <= STATUS_COLUMNS, `${l.length} columns: ${l}`);
}

test('no routing: no lines', () => {
  assert.deepEqual(formatRoutingStatus(NONE, []), []);
});

test('advertised routes: approved ones are routed, the others wait for the owner (with how to approve)', () => {
  const lines = formatRoutingStatus({ ...NONE, advertisedRoutes: ['192.168.1.0/24', 'fd00:1234:5678::/48', '10.1.0.0/16'], routes: ['192.168.1.0/24', 'fd00:1234:5678::/48'], advertisesExitNode: true }, []);
  within100(lines);
  const text = lines.join('\n');
  assert.match(text, /^Routes offered:$/m);
  assert.match(text, /^ {2}ADVERTISED {11}STATE$/m);
  assert.match(text, /^ {2}192\.168\.1\.0\/24 {7}approved, routed$/m);
  assert.match(text, /^ {2}fd00:1234:5678::\/48 {2}approved, routed$/m);
  assert.match(text, /^ {2}10\.1\.0\.0\/16 {10}waiting for the owner$/m);
  assert.match(text, /^ {2}exit node {12}waiting for the owner$/m);
  assert.match(text, /meshd route approve DID PREFIX\|exit-node/);
});

test('everything approved: no approval hint; an approved exit node says so', () => {
  const text = formatRoutingStatus({ ...NONE, advertisedRoutes: ['192.168.1.0/24'], routes: ['192.168.1.0/24'], advertisesExitNode: true, exitNodeApproved: true }, []).join('\n');
  assert.match(text, /^ {2}exit node {7}approved \(peers may choose it\)$/m);
  assert.doesNotMatch(text, /route approve/);
});

test('the exit node in use is named by host, mesh IP and short DID; one asked for but not in use says why', () => {
  const using = formatRoutingStatus({ ...NONE, exitNodeWanted: 'gateway', exitNode: LONG_DID }, [peer({})]);
  within100(using);
  assert.deepEqual(using, [`Exit node: gateway (10.200.7.9, ${shortDid(LONG_DID)}), all traffic goes through it`]);
  const unknownPeer = formatRoutingStatus({ ...NONE, exitNodeWanted: 'gateway', exitNode: LONG_DID }, []);
  assert.deepEqual(unknownPeer, [`Exit node: ${shortDid(LONG_DID)}, all traffic goes through it`]);
  const notInUse = formatRoutingStatus({ ...NONE, exitNodeWanted: 'nas' }, []);
  assert.deepEqual(notInUse, ['Exit node: "nas" not in use (unknown, or not an approved exit node); traffic goes out directly']);
  const byDid = formatRoutingStatus({ ...NONE, exitNodeWanted: LONG_DID }, []);
  within100(byDid);
  assert.ok(byDid[0]!.includes(`"${shortDid(LONG_DID)}" not in use`), byDid[0]);
});

test('a long routing error is cut at 100 columns', () => {
  const lines = formatRoutingStatus({ ...NONE, error: `iptables: ${'x'.repeat(300)}` }, []);
  within100(lines);
  assert.ok(lines[0]!.startsWith('Routing error: iptables: '));
  assert.ok(lines[0]!.endsWith('…'));
});

test('meshd status (daemon view) shows the routing section before the peer table', () => {
  const status = {
    identity: { did: 'did:jwk:self', wireguardKey: 'k', meshIP: '10.200.0.2', meshIP6: null },
    network: null,
    dataplane: null,
    control: null,
    relayServer: null,
    dns: null,
    routing: { ...NONE, advertisedRoutes: ['192.168.1.0/24'], routes: ['192.168.1.0/24'] },
    peers: [peer({})],
  } as unknown as AgentStatus;
  const out = formatDaemonStatus(status);
  const routes = out.indexOf('Routes offered:');
  const peers = out.indexOf('HOST');
  assert.ok(routes > 0 && peers > routes, out);
  assert.match(out, /192\.168\.1\.0\/24 {2}approved, routed/);
  within100(out.split('\n'));
});

/**
 * The lab's parsers and name rules, without namespaces: names fit interfaces and round-trip to
 * their pid; the parsers of tool output (ping, iperf3, wg dump, STUN, pid lists, nettool
 * arguments) read good input right and never throw anything but LabError on bad input.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LabError } from '../../src/lab/errors.js';
import { MAX_IFNAME, netnsName, newRunTag, parseLabName, wgIfName } from '../../src/lab/names.js';
import { parseNettoolArgs } from '../../src/lab/nettool.js';
import { parsePingOutput } from '../../src/lab/ping.js';
import { parsePingSeries, quantile } from '../../src/lab/ping-series.js';
import { parseProcStatCpu } from '../../src/lab/proc-cpu.js';
import { parseIperf3Json } from '../../src/lab/ref-iperf3.js';
import { parseWgDump, wgKeyPair, wgPublicKey } from '../../src/lab/ref-wireguard-go.js';
import { stunBindingRequest, stunMappedAddress } from '../../src/lab/stun-check.js';
import { parsePids } from '../../src/lab/sweep.js';

function onlyLabErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LabError, `threw ${String(e)}`);
  }
}

test('lab names fit interface names and give back their pid and run tag', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4_194_304 }), fc.integer({ min: 0, max: 1295 }), fc.string(), (pid, seq, role) => {
      const tag = newRunTag(pid);
      for (const [name, kind] of [
        [netnsName(tag, seq, role), 'netns'],
        [wgIfName(tag, seq), 'wg'],
      ] as const) {
        assert.ok(name.length <= MAX_IFNAME, name);
        assert.match(name, /^[a-z0-9-]+$/);
        assert.deepEqual(parseLabName(name), { kind, pid, runTag: tag });
      }
    }),
  );
  assert.equal(parseLabName('foo'), undefined);
  assert.equal(parseLabName('mdlx'), undefined);
  assert.equal(parseLabName('cni-1234'), undefined);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parseLabName(s))));
});

test('parsePids reads decimal pids and ignores everything else', () => {
  assert.deepEqual(parsePids('12\n345 \n\n7\n'), [12, 345, 7]);
  assert.deepEqual(parsePids('0 -3 x12 99999999999 4'), [4]);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 4_194_304 })), (pids) => {
      assert.deepEqual(parsePids(pids.join('\n')), pids);
    }),
  );
});

test('parsePingOutput reads iputils summaries', () => {
  const ok = [
    'PING 198.51.100.2 (198.51.100.2) 56(84) bytes of data.',
    '',
    '--- 198.51.100.2 ping statistics ---',
    '3 packets transmitted, 3 received, 0% packet loss, time 405ms',
    'rtt min/avg/max/mdev = 0.041/0.057/0.072/0.012 ms',
  ].join('\n');
  assert.deepEqual(parsePingOutput(ok), { sent: 3, received: 3, rttAvgMs: 0.057 });
  const lost = '--- x ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n';
  assert.deepEqual(parsePingOutput(lost), { sent: 1, received: 0, rttAvgMs: undefined });
  assert.throws(() => parsePingOutput('ping: connect: Network is unreachable'), LabError);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parsePingOutput(s))));
});

test('parseIperf3Json reads TCP and UDP reports and rejects errors', () => {
  const tcp = JSON.stringify({
    end: {
      sum_sent: { seconds: 3, bits_per_second: 950e6, retransmits: 12 },
      sum_received: { seconds: 3, bits_per_second: 940e6 },
    },
  });
  const r = parseIperf3Json(tcp);
  assert.equal(r.mbps, 940);
  assert.equal(r.sentMbps, 950);
  assert.equal(r.retransmits, 12);
  const udp = parseIperf3Json(JSON.stringify({ end: { sum: { seconds: 2, bits_per_second: 100e6, lost_packets: 10, packets: 100 } } }));
  assert.equal(udp.lossFraction, 0.1);
  assert.ok(Math.abs(udp.mbps - 90) < 1e-9);
  assert.throws(() => parseIperf3Json(JSON.stringify({ error: 'unable to connect to server' })), /unable to connect/);
  assert.throws(() => parseIperf3Json(''), LabError);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parseIperf3Json(s))));
  fc.assert(fc.property(fc.jsonValue(), (v) => onlyLabErrors(() => parseIperf3Json(JSON.stringify(v)))));
});

test('parseIperf3Json reads iperf3 3.12 reports: UDP loss from sum_received, bytes, -P 4 totals', () => {
  // shapes as iperf3 3.12 -J prints them (trimmed)
  const udp = parseIperf3Json(
    JSON.stringify({
      start: { test_start: { protocol: 'UDP', num_streams: 1 } },
      end: {
        sum: { seconds: 1.002, bytes: 24713016, bits_per_second: 197347915, lost_packets: 2900, packets: 17067, lost_percent: 16.99 },
        sum_sent: { seconds: 1.0018, bytes: 24713016, bits_per_second: 197347915, lost_packets: 0, packets: 17067, sender: true },
        sum_received: { seconds: 1.002, bytes: 20513816, bits_per_second: 163778712, lost_packets: 2900, packets: 17067, sender: false },
      },
    }),
  );
  assert.equal(udp.protocol, 'udp');
  assert.equal(udp.bytes, 20513816);
  assert.ok(Math.abs(udp.mbps - 163.778712) < 1e-9);
  assert.ok(Math.abs(udp.sentMbps - 197.347915) < 1e-9);
  assert.ok(Math.abs(udp.lossFraction! - 2900 / 17067) < 1e-12);
  assert.equal(udp.retransmits, undefined);

  const tcp4 = parseIperf3Json(
    JSON.stringify({
      start: { test_start: { protocol: 'TCP', num_streams: 4 } },
      end: {
        sum_sent: { seconds: 1.006, bytes: 373948416, bits_per_second: 2972964677, retransmits: 48, sender: true },
        sum_received: { seconds: 1.0066, bytes: 373948416, bits_per_second: 2972078604, sender: true },
      },
    }),
  );
  assert.deepEqual(
    { protocol: tcp4.protocol, bytes: tcp4.bytes, retransmits: tcp4.retransmits, loss: tcp4.lossFraction },
    { protocol: 'tcp', bytes: 373948416, retransmits: 48, loss: undefined },
  );
  // a UDP report without loss counts is refused, not read as 0 % loss
  assert.throws(
    () =>
      parseIperf3Json(
        JSON.stringify({ start: { test_start: { protocol: 'UDP' } }, end: { sum_sent: { bits_per_second: 1 }, sum_received: { seconds: 1, bits_per_second: 1 } } }),
      ),
    LabError,
  );
  assert.throws(
    () => parseIperf3Json(JSON.stringify({ end: { sum: { seconds: 1, bits_per_second: 1, lost_packets: 5, packets: 2 } } })),
    /lost more datagrams/,
  );
});

test('parseProcStatCpu reads utime and stime, even when the command name holds spaces and parentheses', () => {
  const rest = 'S 1 1234 1234 0 -1 4194560 9020 0 0 0 731 242 0 0 20 0 11 0 5566 1234567 8901 18446744073709551615';
  assert.deepEqual(parseProcStatCpu(`4321 (node) ${rest}`), { utimeTicks: 731, stimeTicks: 242 });
  assert.deepEqual(parseProcStatCpu(`4321 (a) b (c) ${rest}\n`), { utimeTicks: 731, stimeTicks: 242 });
  assert.throws(() => parseProcStatCpu('4321 node S 1'), LabError);
  assert.throws(() => parseProcStatCpu('4321 (node) S 1 2 3'), /field 14/);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parseProcStatCpu(s))));
});

test('parsePingSeries gives each answer\'s RTT and nearest-rank median and p99; duplicates are skipped', () => {
  const lines = ['PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.'];
  for (let i = 1; i <= 100; i++) lines.push(`64 bytes from 10.77.0.2: icmp_seq=${i} ttl=64 time=${(i / 10).toFixed(1)} ms`);
  lines.push('64 bytes from 10.77.0.2: icmp_seq=100 ttl=64 time=99.0 ms (DUP!)');
  lines.push('', '--- 10.77.0.2 ping statistics ---', '101 packets transmitted, 100 received, +1 duplicates, 0.990099% packet loss, time 1010ms');
  lines.push('rtt min/avg/max/mdev = 0.100/5.050/10.000/2.887 ms, pipe 2');
  const r = parsePingSeries(lines.join('\n'));
  assert.deepEqual([r.sent, r.received, r.rttsMs.length], [101, 100, 100]);
  assert.deepEqual([r.minMs, r.medianMs, r.p99Ms, r.maxMs], [0.1, 5, 9.9, 10]);
  const none = parsePingSeries('--- x ping statistics ---\n5 packets transmitted, 0 received, 100% packet loss, time 40ms\n');
  assert.deepEqual([none.received, none.medianMs, none.p99Ms], [0, undefined, undefined]);
  assert.equal(quantile([3], 0.99), 3);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
  assert.equal(quantile([], 0.5), undefined);
  assert.throws(() => quantile([1], 0), LabError);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parsePingSeries(s))));
});

test('parseWgDump reads `wg show IF dump` and skips malformed peer lines', () => {
  const k = wgKeyPair();
  const p = wgKeyPair();
  const dump = [
    `${k.privateKey}\t${k.publicKey}\t51820\toff`,
    `${p.publicKey}\t(none)\t198.51.100.2:51820\t10.77.0.2/32,10.77.1.0/24\t1700000000\t1234\t5678\toff`,
    'garbage line',
    `${p.publicKey}\t(none)\t(none)\t(none)\tx\t1\t2\toff`,
  ].join('\n');
  const d = parseWgDump(dump);
  assert.equal(d?.publicKey, k.publicKey);
  assert.equal(d?.listenPort, 51820);
  assert.deepEqual(d?.peers, [
    {
      publicKey: p.publicKey,
      endpoint: '198.51.100.2:51820',
      allowedIps: ['10.77.0.2/32', '10.77.1.0/24'],
      latestHandshake: 1700000000,
      rxBytes: 1234,
      txBytes: 5678,
    },
  ]);
  assert.equal(parseWgDump(''), undefined);
  fc.assert(fc.property(fc.string(), (s) => onlyLabErrors(() => parseWgDump(s))));
});

test('wgPublicKey matches the key pair it came from (RFC 7748 vector too)', () => {
  for (let i = 0; i < 5; i++) {
    const k = wgKeyPair();
    assert.equal(wgPublicKey(k.privateKey), k.publicKey);
  }
  // RFC 7748 section 6.1, Alice.
  const alicePriv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  const alicePub = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
  assert.equal(wgPublicKey(alicePriv), alicePub);
  assert.throws(() => wgPublicKey('c2hvcnQ='), LabError);
});

function stunResponse(txId: Buffer, ip: string, port: number): Buffer {
  const attr = Buffer.alloc(12);
  attr.writeUInt16BE(0x0020, 0);
  attr.writeUInt16BE(8, 2);
  attr[5] = 0x01;
  attr.writeUInt16BE(port ^ 0x2112, 6);
  const n = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  attr.writeUInt32BE((n ^ 0x2112a442) >>> 0, 8);
  const software = Buffer.from([0x80, 0x22, 0x00, 0x03, 0x61, 0x62, 0x63, 0x00]);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0101, 0);
  head.writeUInt16BE(software.length + attr.length, 2);
  head.writeUInt32BE(0x2112a442, 4);
  txId.copy(head, 8);
  return Buffer.concat([head, software, attr]);
}

test('stunMappedAddress reads XOR-MAPPED-ADDRESS and never throws', () => {
  const req = stunBindingRequest();
  assert.equal(req.length, 20);
  assert.equal(req.readUInt16BE(0), 1);
  const tx = req.subarray(8, 20);
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
      assert.equal(stunMappedAddress(stunResponse(Buffer.from(tx), ip, port), tx), `${ip}:${port}`);
    }),
  );
  const good = stunResponse(Buffer.from(tx), '203.0.113.10', 40000);
  assert.equal(stunMappedAddress(good, Buffer.alloc(12)), undefined, 'other transaction');
  assert.equal(stunMappedAddress(good.subarray(0, good.length - 1)), undefined, 'truncated');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => onlyLabErrors(() => stunMappedAddress(b))));
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 60 }), (tail) => {
      const m = Buffer.concat([good.subarray(0, 20), Buffer.from(tail)]);
      m.writeUInt16BE(tail.length, 2);
      onlyLabErrors(() => stunMappedAddress(m));
    }),
  );
});

test('nettool arguments are validated', () => {
  const a = parseNettoolArgs(['udp-probe', '--bind', '0.0.0.0:5000', '--to', '198.51.100.10:7000', '--to', '198.51.100.10:7001', '--hex', '00ff']);
  assert.deepEqual(a.to, ['198.51.100.10:7000', '198.51.100.10:7001']);
  assert.equal(a.hex, '00ff');
  assert.throws(() => parseNettoolArgs(['udp-echo']), LabError);
  assert.throws(() => parseNettoolArgs(['tcp-ping', '--to', 'host:1']), LabError);
  assert.throws(() => parseNettoolArgs(['udp-probe', '--to', '1.2.3.4:70000']), LabError);
  assert.throws(() => parseNettoolArgs(['nope']), LabError);
  fc.assert(fc.property(fc.array(fc.string(), { maxLength: 6 }), (argv) => onlyLabErrors(() => parseNettoolArgs(argv))));
});

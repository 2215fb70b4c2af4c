/**
 * The plumbing of bench/throughput.ts, for real but short: one meshd ↔ meshd path in two
 * namespaces, every measurement of the bench for 1 s (TCP ×1 and ×4, UDP at a fixed rate, ping
 * idle, under a capped and an uncapped TCP stream and idle again, CPU of the engines from /proc). Asserts that data moved and every field the
 * bench prints was parsed — not how fast anything is (that is the bench's job, on a quiet machine).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measurePath, type CpuReport, type RttMeasurement } from '../../src/lab/index.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { LAB_PREREQS } from './helpers.js';
import { openPath } from './tunnel-paths.js';

function assertCpu(cpu: CpuReport, what: string): void {
  assert.deepEqual(
    cpu.processes.map((p) => [p.label, p.side]),
    [
      ['meshd', 'sender'],
      ['meshd', 'receiver'],
    ],
    what,
  );
  for (const p of cpu.processes) assert.ok(p.cpuSeconds > 0, `${what}: the ${p.side}'s engine used CPU (${p.cpuSeconds} s)`);
  for (const v of [cpu.senderSecondsPerGbit, cpu.receiverSecondsPerGbit, cpu.totalSecondsPerGbit]) {
    assert.ok(v !== undefined && Number.isFinite(v) && v > 0, `${what}: CPU s/Gbit ${v}`);
  }
  assert.ok(Math.abs(cpu.totalSecondsPerGbit! - cpu.senderSecondsPerGbit! - cpu.receiverSecondsPerGbit!) < 1e-9);
}

function assertRtt(r: RttMeasurement, what: string): void {
  assert.ok(r.sent >= 10 && r.received > 0 && r.received <= r.sent, `${what}: ${r.received}/${r.sent} answered`);
  assert.ok(r.minMs > 0 && r.minMs <= r.medianMs && r.medianMs <= r.p99Ms && r.p99Ms <= r.maxMs, `${what}: ${JSON.stringify(r)}`);
}

test('bench/throughput measurements on meshd ↔ meshd: every figure present, data moved', { timeout: 60_000 }, async (t) => {
  if (!requirePrereqs(t, [...LAB_PREREQS, 'tun', 'iperf3'])) return;
  const open = await openPath('meshd');
  t.after(() => open.close());
  const steps: string[] = [];
  const r = await measurePath(open.path, { seconds: 1, udpRate: '100M', loadRate: '40M', onProgress: (l) => steps.push(l) });

  assert.equal(steps.length, 7, steps.join('\n'));
  for (const tcp of [r.tcp1, r.tcpN]) {
    assert.ok(tcp.bytes > 0 && tcp.mbps > 0 && tcp.sentMbps > 0, `TCP ×${tcp.streams}: ${JSON.stringify(tcp)}`);
    assert.ok(tcp.seconds > 0.5 && tcp.seconds < 3, `TCP ×${tcp.streams} ran ${tcp.seconds} s`);
    assert.ok(tcp.retransmits !== undefined && tcp.retransmits >= 0);
    assertCpu(tcp.cpu, `TCP ×${tcp.streams}`);
  }
  assert.deepEqual([r.tcp1.streams, r.tcpN.streams], [1, 4]);

  assert.equal(r.udp.targetRate, '100M');
  assert.equal(r.udp.datagramBytes, 1420 - 28);
  assert.equal(r.udp.socketBuffer, '4M');
  assert.ok(r.udp.bytes > 0 && r.udp.mbps > 0, JSON.stringify(r.udp));
  // iperf3 paces to the target rate: what it sent is near 100 Mbit/s, what arrived no more
  assert.ok(r.udp.sentMbps > 50 && r.udp.sentMbps < 150, `UDP sent ${r.udp.sentMbps} Mbit/s`);
  assert.ok(r.udp.mbps <= r.udp.sentMbps * 1.05);
  assert.ok(r.udp.lossPercent >= 0 && r.udp.lossPercent < 100);
  assertCpu(r.udp.cpu, 'UDP');

  assertRtt(r.rttIdle, 'idle');
  assert.equal(r.rttIdle.sent, 100);
  assertRtt(r.rttLoaded, 'under load');
  assert.ok(r.rttLoaded.loadMbps !== undefined && r.rttLoaded.loadMbps > 0);
  assert.equal(r.rttLoaded.loadRate, undefined);
  assertRtt(r.rttCapped, 'under the capped load');
  assert.equal(r.rttCapped.loadRate, '40M');
  // iperf3 paces the capped stream: it carried about 40 Mbit/s, far below what the path can
  const capped = r.rttCapped.loadMbps;
  assert.ok(capped !== undefined && capped > 10 && capped < 60, `capped stream ${capped} Mbit/s`);
  assertRtt(r.rttIdleAfter, 'idle after the transfers');
  assert.equal(r.rttIdleAfter.sent, 100);
});

/**
 * The packet path allocates nothing: millions of inbound/outbound calls over every packet kind
 * (TCP, UDP, ICMP echo and errors, fragments, IPv6, malformed, spoofed) trigger no garbage
 * collection. Allocating even 16 bytes per packet would force several scavenges here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { compileFilter } from '../../src/engine/filter/compile.js';
import { sourceCheckFromPrefixes } from '../../src/engine/filter/cidr.js';
import { PacketFilter } from '../../src/engine/filter/filter.js';
import { craftEcho, craftIcmpError, craftTcp, craftUdp, fragmentPacket } from '../helpers/craft.js';

test('inbound and outbound do not allocate per packet', async () => {
  const key = Buffer.alloc(32, 1).toString('base64');
  const f = new PacketFilter({ maxFlows: 1024 });
  f.setPolicy(
    compileFilter({
      rules: [
        { action: 'accept', srcPeers: [key], proto: 'tcp', dstPorts: ['22'] },
        { action: 'accept', srcCidrs: ['10.200.0.0/16', 'fd00::/16'], proto: 'udp', dstPorts: ['1000-2000'] },
        { action: 'drop', proto: 'icmp' },
      ],
    }),
  );
  const check = sourceCheckFromPrefixes(['10.200.7.9', 'fd00::9']);
  const inbound = [
    craftUdp('10.200.7.9', '10.200.0.2', 53, 4000),
    craftTcp('10.200.7.9', '10.200.0.2', 1, 22, 0x02),
    craftTcp('fd00::9', 'fd00::2', 1, 22, 0x10),
    craftUdp('fd00::9', 'fd00::2', 9, 1500),
    craftEcho('10.200.7.9', '10.200.0.2', 'reply', 5),
    craftEcho('fd00::9', 'fd00::2', 'request', 5),
    craftIcmpError('10.200.7.9', '10.200.0.2', 'unreachable', craftUdp('10.200.0.2', '10.200.7.9', 4000, 53)),
    craftIcmpError('fd00::9', 'fd00::2', 'too-big', craftUdp('fd00::2', 'fd00::9', 1, 2, Buffer.alloc(1300))),
    ...fragmentPacket(craftUdp('10.200.7.9', '10.200.0.2', 53, 4000, Buffer.alloc(300)), 128),
    ...fragmentPacket(craftUdp('fd00::9', 'fd00::2', 7, 1999, Buffer.alloc(300)), 128),
    craftTcp('10.200.7.10', '10.200.0.2', 1, 22, 0x02), // spoofed
    Buffer.from([0x45, 0, 0]), // malformed
  ];
  const outbound = [craftUdp('10.200.0.2', '10.200.7.9', 4000, 53), craftEcho('10.200.0.2', '10.200.7.9', 'request', 5), craftTcp('fd00::2', 'fd00::9', 5, 6, 0x02)];
  const run = (n: number): number => {
    let accepted = 0;
    for (let i = 0; i < n; i++) {
      const now = 1000 + (i >> 12);
      const p = inbound[i % inbound.length]!;
      if (f.inbound(p, 0, p.length, key, check, now) === 0) accepted++;
      const o = outbound[i % outbound.length]!;
      f.outbound(o, 0, o.length, now);
    }
    return accepted;
  };
  run(200_000); // warm up: optimise, fill the table
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  await sleep(20);
  gcs = 0;
  const accepted = run(2_000_000);
  await sleep(50);
  obs.disconnect();
  assert.ok(accepted > 500_000, 'the loop exercised the accept paths');
  assert.ok(gcs <= 1, `garbage collections during 4M filter calls: ${gcs}`);
});

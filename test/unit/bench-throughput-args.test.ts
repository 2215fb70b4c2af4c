/**
 * bench/throughput.ts without running it: which paths --only selects (in the bench's order, the
 * reference first), the checks on --seconds / BENCH_SECONDS, --udp-rate and --repeat, and the
 * per-figure median that --repeat reports.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deepMedian, parseSettings, UsageError } from '../../bench/throughput.js';

test('--only picks paths by id and group, in run order; BENCH_SECONDS and flags are checked', () => {
  const all = parseSettings([], {});
  assert.deepEqual(all.ids, ['wg-go', 'veth', 'meshd', 'meshd-no-offload', 'meshd-pure-ts', 'meshd-to-wg-go', 'wg-go-to-meshd']);
  assert.deepEqual([all.seconds, all.streams, all.udpRate, all.loadRate, all.repeat, all.json], [5, 4, '1G', '100M', 1, false]);
  assert.equal(parseSettings(['--load-rate', '250M'], { BENCH_LOAD_RATE: '50M' }).loadRate, '250M');
  assert.equal(parseSettings([], { BENCH_LOAD_RATE: '50M' }).loadRate, '50M');

  const some = parseSettings(['--only', 'veth,meshd,wg-go', '--json', '--udp-rate', '500M'], { BENCH_SECONDS: '3', BENCH_REPEAT: '2' });
  assert.deepEqual(some.ids, ['wg-go', 'veth', 'meshd']);
  assert.deepEqual([some.seconds, some.udpRate, some.repeat, some.json], [3, '500M', 2, true]);
  assert.deepEqual(parseSettings(['--only', 'mixed'], {}).ids, ['meshd-to-wg-go', 'wg-go-to-meshd']);
  assert.equal(parseSettings(['--seconds', '7'], { BENCH_SECONDS: '3' }).seconds, 7, 'the flag wins over the environment');

  for (const [argv, env, message] of [
    [['--only', 'meshd,wireguard'], {}, /unknown path "wireguard"/],
    [['--only', ','], {}, /selects no path/],
    [[], { BENCH_SECONDS: '0' }, /whole number from 1 to 600/],
    [['--seconds', '2.5'], {}, /whole number/],
    [['--udp-rate', 'fast'], {}, /--udp-rate must look like/],
    [['--load-rate', '1 G'], {}, /--load-rate must look like/],
    [['--repeat', '0'], {}, /runs per path/],
    [['--bogus'], {}, /bogus/],
  ] as const) {
    assert.throws(() => parseSettings(argv, env), (e: unknown) => e instanceof UsageError && message.test(e.message), JSON.stringify(argv));
  }
});

test('--repeat reports the median of each figure; labels, undefined and pids come from the first run', () => {
  const run = (mbps: number, pid: number, retr: number | undefined): unknown => ({
    label: 'meshd ↔ meshd',
    tcp1: { mbps, retransmits: retr, cpu: { processes: [{ label: 'meshd', pid, cpuSeconds: mbps / 100 }] } },
  });
  assert.deepEqual(deepMedian([run(300, 11, 5), run(100, 12, undefined), run(200, 13, 9)]), {
    label: 'meshd ↔ meshd',
    tcp1: { mbps: 200, retransmits: 7, cpu: { processes: [{ label: 'meshd', pid: 11, cpuSeconds: 2 }] } },
  });
  assert.deepEqual(deepMedian([run(100, 1, 1), run(400, 2, 3)]), {
    label: 'meshd ↔ meshd',
    tcp1: { mbps: 250, retransmits: 2, cpu: { processes: [{ label: 'meshd', pid: 1, cpuSeconds: 2.5 }] } },
  });
});

#!/usr/bin/env node
// Runs the compiled test suite with Node's test runner: unit tests first (two at a time),
// then integration and namespace-lab tests one file at a time (they are timing-sensitive on
// small machines). Prints one closing line "tests: N passed, N failed, N skipped".
// Usage: node scripts/run-tests.js [unit|unit-pure-ts|unit-no-offload|integration|integration-pure-ts|lab ...] [--only PATTERN]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ensureTestPostgres } from './postgres.js';

const root = new URL('..', import.meta.url).pathname;
const argv = process.argv.slice(2);
const onlyIdx = argv.indexOf('--only');
const only = onlyIdx >= 0 ? argv[onlyIdx + 1] : undefined;
const phasesWanted = argv.filter((a, i) => !a.startsWith('--') && (onlyIdx < 0 || i !== onlyIdx + 1));

function find(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

// The data plane has two implementations of its per-packet work: the native addon (batched
// syscalls and ChaCha20-Poly1305) and pure TypeScript (node:dgram, node:crypto). The data-plane
// unit and integration tests run on both (the pure-TS phases take only those: nothing else
// touches a packet); the WireGuard lab tests run both paths inside each file. The data-plane unit
// tests also run with the segmentation offloads off (MESHD_NO_OFFLOAD=1), and test/lab/offload
// runs a tunnel both ways.
const DATA_PLANE = /\/(wg-|udp-|aead-|magicsock-|disco|stun|dataplane)[^/]*\.test\.js$/;
const phases = [
  { name: 'unit', dirs: ['dist/test/unit'], concurrency: 2 },
  { name: 'unit-pure-ts', dirs: ['dist/test/unit'], concurrency: 2, env: { MESHD_PURE_TS: '1' }, only: DATA_PLANE },
  { name: 'unit-no-offload', dirs: ['dist/test/unit'], concurrency: 2, env: { MESHD_NO_OFFLOAD: '1' }, only: DATA_PLANE },
  { name: 'integration', dirs: ['dist/test/integration'], concurrency: 1 },
  { name: 'integration-pure-ts', dirs: ['dist/test/integration'], concurrency: 1, env: { MESHD_PURE_TS: '1' }, only: DATA_PLANE },
  { name: 'lab', dirs: ['dist/test/lab'], concurrency: 1 },
];

// the DWN-on-PostgreSQL test needs a database: the machine's own, set up here when it can be
if (!process.env.MESHD_TEST_POSTGRES_URL) {
  const pg = ensureTestPostgres();
  if (pg.url) process.env.MESHD_TEST_POSTGRES_URL = pg.url;
  else console.log(`PostgreSQL for the storage test: ${pg.reason}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'meshd-tests-'));
const totals = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
let failedRun = false;
for (const phase of phases) {
  if (phasesWanted.length > 0 && !phasesWanted.includes(phase.name) && !phasesWanted.includes(phase.name.replace(/-(pure-ts|no-offload)$/, ''))) continue;
  let files = phase.dirs.flatMap((d) => find(join(root, d)));
  if (phase.only) files = files.filter((f) => phase.only.test(f));
  if (only) files = files.filter((f) => f.includes(only));
  if (files.length === 0) continue;
  console.log(`\n== ${phase.name}: ${files.length} file(s)`);
  const tap = join(tmp, `${phase.name}.tap`);
  const r = spawnSync(
    process.execPath,
    [
      '--test',
      `--test-concurrency=${phase.concurrency}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tap}`,
      ...files,
    ],
    { stdio: 'inherit', cwd: root, env: { ...process.env, ...phase.env } },
  );
  if (r.status !== 0) failedRun = true;
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  for (const k of Object.keys(totals)) {
    const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
    if (m) totals[k] += Number(m[1]);
  }
}
rmSync(tmp, { recursive: true, force: true });
const failed = totals.fail + totals.cancelled;
console.log(`\ntests: ${totals.pass} passed, ${failed} failed, ${totals.skipped} skipped`);
process.exit(failedRun || failed > 0 ? 1 : 0);

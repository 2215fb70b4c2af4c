#!/usr/bin/env node
// Makes a fresh clone ready for `npm run demo` or `npm test`, saying in one line what it
// installs and why: the npm dependencies (and the native addon) when node_modules is missing
// or older than package-lock.json, and the Debian packages the demo or the tests use when they
// are missing (as root, with apt-get; otherwise it prints the command to run).
// Usage: node scripts/setup.js demo|test
// Node built-ins only: it runs before the dependencies exist.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const what = process.argv[2] === 'demo' ? 'demo' : 'test';

/** Debian packages, and why each set is needed. */
const PACKAGES = {
  demo: ['python3', 'make', 'g++', 'iproute2', 'iptables', 'iputils-ping', 'procps'],
  test: [
    'python3', 'make', 'g++', 'iproute2', 'iptables', 'iputils-ping', 'conntrack', 'procps', 'ca-certificates',
    'wireguard-go', 'wireguard-tools', 'coturn', 'iperf3', 'postgresql', 'systemd', 'chromium',
  ],
};
const WHY = {
  demo: 'a compiler for the native addon; network namespaces, NAT routers and ping for the demo hosts',
  test: 'a compiler for the native addon; network namespaces, NAT routers, reference peers (wireguard-go, coturn, iperf3), PostgreSQL, systemd-analyze (the service unit) and Chromium (the dashboard) for the tests',
};

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`setup: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

// 1. Debian packages (first: the native addon needs a compiler) (Linux with dpkg only)
if (process.platform === 'linux' && spawnSync('dpkg-query', ['--version']).status === 0) {
  const missing = PACKAGES[what].filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
  if (missing.length > 0) {
    const args = ['install', '-y', '-q', '--no-install-recommends', ...missing];
    if (process.getuid?.() === 0) {
      console.log(`setup: installing ${missing.join(' ')} (${WHY[what]})`);
      run('apt-get', ['update', '-q'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      run('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } else {
      console.log(`setup: missing ${missing.join(' ')} (${WHY[what]}); as root: apt-get ${args.join(' ')}`);
    }
  }
}

// 2. npm dependencies and the native addon
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  console.log('setup: installing the npm dependencies and building the native addon (npm ci), needed to build and run meshd');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

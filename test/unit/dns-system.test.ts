/**
 * Telling the host about mesh DNS: the resolv.conf edit (backup, marker, restore, someone else's
 * file kept, recovery after a kill, symlinks left alone) on temporary files, and the resolvectl
 * commands for systemd-resolved (which does not run here: the commands are checked, not run).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNameTable } from '../../src/dns/names.js';
import { MeshDns, readAcceptDns, writeAcceptDns } from '../../src/dns/mesh-dns.js';
import { MARKER, parseResolvConf, renderResolvConf, ResolvConfEditor } from '../../src/dns/resolv-conf.js';
import { inInitialNetns, resolvectlApply, resolvectlRevert, resolvedRunning } from '../../src/dns/resolved.js';

const dir = mkdtempSync(join(tmpdir(), 'meshd-dns-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const ORIGINAL = '# from DHCP\nnameserver 192.0.2.1\nnameserver 192.0.2.2 # second\nnameserver 192.0.2.3\nsearch corp.example\noptions ndots:2 edns0\n';

function files(text = ORIGINAL): { conf: string; state: string } {
  const d = join(dir, String(seq++));
  const conf = `${d}-resolv.conf`;
  writeFileSync(conf, text);
  return { conf, state: join(d, 'dns') };
}

test('parse and render: the mesh server first, two original servers after it, the suffix searched first, options kept', () => {
  assert.deepEqual(parseResolvConf(ORIGINAL), { nameservers: ['192.0.2.1', '192.0.2.2', '192.0.2.3'], search: ['corp.example'], options: ['ndots:2', 'edns0'] });
  const out = renderResolvConf(ORIGINAL, '10.200.0.5', 'lab.internal');
  assert.equal(out, `${MARKER}\nnameserver 10.200.0.5\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lab.internal corp.example\noptions ndots:2 edns0\n`);
});

test('apply and restore: the original comes back byte for byte; the backup is gone', () => {
  const f = files();
  const ed = new ResolvConfEditor(f.conf, join(f.state, 'backup'));
  ed.apply('10.200.0.5', 'lab.internal');
  assert.ok(readFileSync(f.conf, 'utf8').startsWith(MARKER));
  assert.equal(ed.originalText(), ORIGINAL);
  ed.apply('10.200.0.5', 'other.internal'); // applied twice (a new suffix): the backup is still the original
  assert.equal(ed.originalText(), ORIGINAL);
  assert.equal(ed.restore(), 'restored');
  assert.equal(readFileSync(f.conf, 'utf8'), ORIGINAL);
  assert.ok(!existsSync(join(f.state, 'backup')));
  assert.equal(ed.restore(), 'nothing');
});

test('restore keeps a resolv.conf someone else wrote since', () => {
  const f = files();
  const ed = new ResolvConfEditor(f.conf, join(f.state, 'backup'));
  ed.apply('10.200.0.5', 'lab.internal');
  writeFileSync(f.conf, 'nameserver 198.51.100.9\n');
  assert.equal(ed.restore(), 'kept-theirs');
  assert.equal(readFileSync(f.conf, 'utf8'), 'nameserver 198.51.100.9\n');
});

test('a symlinked resolv.conf belongs to another program: E_DNS, untouched', () => {
  const f = files();
  const link = `${f.conf}.link`;
  symlinkSync(f.conf, link);
  const ed = new ResolvConfEditor(link, join(f.state, 'backup'));
  assert.throws(() => ed.apply('10.200.0.5', 'lab.internal'), (e: Error & { code?: string }) => e.code === 'E_DNS' && /symlink/.test(e.message));
  assert.equal(readFileSync(f.conf, 'utf8'), ORIGINAL);
});

test('resolvectl: per-link DNS server, routing-only domains, no default route; revert', () => {
  assert.deepEqual(resolvectlApply('meshd0', '10.200.0.5', 'lab.internal', ['200.10.in-addr.arpa']), [
    ['resolvectl', 'dns', 'meshd0', '10.200.0.5'],
    ['resolvectl', 'domain', 'meshd0', '~lab.internal', '~200.10.in-addr.arpa'],
    ['resolvectl', 'default-route', 'meshd0', 'false'],
  ]);
  assert.deepEqual(resolvectlRevert('meshd0'), ['resolvectl', 'revert', 'meshd0']);
});

test('resolved counts as running only with its socket, and only for a process in the host’s own network namespace', () => {
  const socket = join(dir, `resolved-${seq++}`);
  assert.equal(resolvedRunning(socket), false);
  writeFileSync(socket, '');
  assert.equal(resolvedRunning(socket), inInitialNetns());
});

test('the remembered --accept-dns', () => {
  const d = join(dir, `settings-${seq++}`);
  assert.equal(readAcceptDns(d), undefined);
  writeAcceptDns(d, true);
  assert.equal(readAcceptDns(d), true);
  writeAcceptDns(d, false);
  assert.equal(readAcceptDns(d), false);
});

// MeshDns binds port 53 (what resolv.conf and resolved can point at) on a loopback address of its own
const root = process.getuid?.() === 0;
const table = buildNameTable('lab.internal', [{ did: 'did:a', hostname: 'a', ipv4: '10.200.0.1', ipv6: 'fd7a::1' }], ['10.200.0.0/16']);
const logs: string[] = [];
const log = (_l: string, event: string) => void logs.push(event);
const addr = () => `127.53.${(process.pid >> 8) & 0xff}.${(process.pid & 0xff) || 1}`;

test('MeshDns with resolved: the resolvectl commands on start, revert on stop; --no-accept-dns changes nothing', { skip: (!root && 'needs root (port 53)') || (!inInitialNetns() && 'runs in a network namespace of its own') }, async () => {
  const f = files();
  const socket = join(dir, `resolved-${seq++}`);
  writeFileSync(socket, '');
  const ran: string[][] = [];
  const run = async (argv: readonly string[]) => void ran.push([...argv]);
  const dns = await MeshDns.start({ stateDir: f.state, link: 'meshd9', address: addr(), acceptDns: undefined, table, dnsServers: [], resolvConfPath: f.conf, resolvedSocket: socket, run, log });
  assert.equal(dns.status().mode, 'resolved');
  await dns.stop();
  assert.deepEqual(ran, [...resolvectlApply('meshd9', addr(), 'lab.internal', ['200.10.in-addr.arpa']), resolvectlRevert('meshd9')]);
  assert.equal(readFileSync(f.conf, 'utf8'), ORIGINAL, 'resolv.conf is not touched when resolved runs');
  ran.length = 0;
  const off = await MeshDns.start({ stateDir: f.state, link: 'meshd9', address: addr(), acceptDns: false, table, dnsServers: [], resolvConfPath: f.conf, resolvedSocket: socket, run, log });
  assert.equal(off.status().mode, 'none');
  await off.stop();
  assert.deepEqual(ran, []);
});

test('MeshDns with resolv.conf: only with --accept-dns; a killed run is recovered; upstreams from the original', { skip: !root && 'needs root (port 53)' }, async () => {
  const f = files();
  const base = { stateDir: f.state, link: 'meshd9', address: addr(), table, resolvConfPath: f.conf, resolvedSocket: join(dir, 'no-such-socket'), log };
  const untouched = await MeshDns.start({ ...base, acceptDns: undefined, dnsServers: [] });
  assert.equal(untouched.status().mode, 'none');
  await untouched.stop();
  assert.equal(readFileSync(f.conf, 'utf8'), ORIGINAL);

  const first = await MeshDns.start({ ...base, acceptDns: true, dnsServers: ['198.51.100.53'] });
  assert.equal(first.status().mode, 'resolv.conf');
  assert.deepEqual(first.status().upstreams, ['198.51.100.53', '192.0.2.1', '192.0.2.2', '192.0.2.3']);
  assert.match(readFileSync(f.conf, 'utf8'), new RegExp(`^${MARKER.replace(/[.*+?^${}()|[\]\\`]/g, '\\$&')}\nnameserver ${addr().replace(/\./g, '\\.')}\n`));
  // "killed": the server goes, resolv.conf and the backup stay
  await (first as unknown as { server: { stop(): Promise<void> } }).server.stop();
  const second = await MeshDns.start({ ...base, acceptDns: true, dnsServers: [] });
  assert.ok(logs.includes('dns.recovered'));
  assert.deepEqual(second.status().upstreams, ['192.0.2.1', '192.0.2.2', '192.0.2.3'], 'upstreams come from the original, not from our own file');
  assert.equal(second.status().mode, 'resolv.conf');
  await second.stop();
  assert.equal(readFileSync(f.conf, 'utf8'), ORIGINAL);
});

/** A resolver that asks only `host`:`port`, once, briefly. */
function askOnly(host: string, port: number): Resolver {
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
  return r;
}

test('MeshDns serves on the mesh IPv6 address too, same port; one counter set; both close on stop', async () => {
  const f = files();
  const base = { stateDir: f.state, link: 'meshd9', table, resolvConfPath: f.conf, resolvedSocket: join(dir, 'no-such-socket'), acceptDns: false, dnsServers: [], port: 0, log };
  const dns = await MeshDns.start({ ...base, address: '127.0.0.1', address6: '::1' });
  const st = dns.status();
  assert.equal(st.address6, '::1');
  assert.deepEqual(await askOnly('::1', st.port).resolve4('a.lab.internal'), ['10.200.0.1']);
  assert.deepEqual(await askOnly('::1', st.port).resolve6('a.lab.internal'), ['fd7a::1']);
  assert.deepEqual(await askOnly('127.0.0.1', st.port).resolve4('a.lab.internal'), ['10.200.0.1']);
  assert.equal(dns.status().counters.local, 3, 'the IPv6 and IPv4 servers count into one status');
  await dns.stop();
  await assert.rejects(askOnly('::1', st.port).resolve4('a.lab.internal'), 'the IPv6 server is closed after stop');
});

test('MeshDns without a usable IPv6 address serves IPv4 alone and says why', async () => {
  const f = files();
  const seen: string[] = [];
  const dns = await MeshDns.start({
    stateDir: f.state, link: 'meshd9', table, resolvConfPath: f.conf, resolvedSocket: join(dir, 'no-such-socket'), acceptDns: false, dnsServers: [], port: 0,
    address: '127.0.0.1', address6: '2001:db8::53', // documentation prefix: on no interface here
    log: (_l, event) => void seen.push(event),
  });
  try {
    assert.equal(dns.status().address6, null);
    assert.ok(seen.includes('dns.ipv6-listen-failed'), seen.join(','));
    assert.deepEqual(await askOnly('127.0.0.1', dns.status().port).resolve4('a.lab.internal'), ['10.200.0.1']);
  } finally {
    await dns.stop();
  }
});

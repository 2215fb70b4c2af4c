import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runMeshd, tempDir } from '../helpers/cli.js';
import { requirePrereqs } from '../helpers/prereqs.js';
import { parseDidJwk } from '../../src/identity/did-jwk.js';
import { x25519PublicFromEd25519 } from '../../src/identity/keys.js';

interface InitJson {
  profile: string;
  did: string;
  wireguardPublicKey: string;
  meshIP: string;
  meshIP6: string;
  created: boolean;
}

test('meshd init prints DID, WireGuard key and mesh IP; --json; idempotent; global options anywhere', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  const human = runMeshd(['init', '--home', home]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /Your device identity: did:jwk:/);
  assert.match(human.stdout, /WireGuard public key: [A-Za-z0-9+/]{43}=/);
  assert.match(human.stdout, /Mesh IP \(default network\): 10\.200\.\d+\.\d+/);
  const j1 = JSON.parse(runMeshd(['--home', home, '--json', 'init']).stdout) as InitJson;
  const j2 = JSON.parse(runMeshd(['init', '--json'], { env: { MESHD_HOME: home } }).stdout) as InitJson;
  assert.equal(j1.created, false);
  assert.equal(j1.did, j2.did);
  assert.ok(human.stdout.includes(j1.did));
  assert.equal(Buffer.from(x25519PublicFromEd25519(parseDidJwk(j1.did))).toString('base64'), j1.wireguardPublicKey);
  const other = JSON.parse(runMeshd(['init', '--json', '--home', join(d.path, 'h2')]).stdout) as InitJson;
  assert.notEqual(other.did, j1.did);
});

test('wg pubkey on the stored private key prints the derived public key', (t) => {
  if (!requirePrereqs(t, ['wg'])) return;
  const d = tempDir();
  t.after(d.cleanup);
  for (const name of ['a', 'b', 'c']) {
    const home = join(d.path, name);
    const j = JSON.parse(runMeshd(['init', '--json', '--home', home]).stdout) as InitJson;
    const id = JSON.parse(readFileSync(join(home, 'profiles', 'default', 'identity.json'), 'utf8')) as { ed25519Seed: string };
    // derive the WireGuard private key as docs/DESIGN.md §4.2 says, independently of our code
    const k = createHash('sha512').update(Buffer.from(id.ed25519Seed, 'base64url')).digest().subarray(0, 32);
    k[0] = k[0]! & 248;
    k[31] = (k[31]! & 127) | 64;
    const pub = execFileSync('wg', ['pubkey'], { input: k.toString('base64') + '\n' }).toString().trim();
    assert.equal(pub, j.wireguardPublicKey);
  }
});

test('errors: one line, exit 1 for failures, exit 2 for usage, stack only with MESHD_DEBUG=1', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  assert.equal(runMeshd(['init', '--home', home]).code, 0);
  const idFile = join(home, 'profiles', 'default', 'identity.json');
  truncateSync(idFile, 25);
  const r = runMeshd(['init', '--home', home]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(r.stderr.includes(idFile));
  const dbg = runMeshd(['init', '--home', home], { env: { MESHD_DEBUG: '1' } });
  assert.equal(dbg.code, 1);
  assert.match(dbg.stderr, /\n\s+at /);
  // a --home that is a file
  const file = join(d.path, 'plainfile');
  writeFileSync(file, 'x');
  const w = runMeshd(['init', '--home', file]);
  assert.equal(w.code, 1);
  assert.equal(w.stderr.trim().split('\n').length, 1);
  assert.match(w.stderr, /not a directory/);
  // usage errors
  assert.equal(runMeshd(['no-such-command']).code, 2);
  assert.equal(runMeshd(['auth', 'use']).code, 2);
  assert.equal(runMeshd(['init', '--bogus']).code, 2);
  // help on every command
  for (const args of [['--help'], ['init', '--help'], ['auth', '--help'], ['auth', 'logout', '--help']]) {
    const h = runMeshd(args);
    assert.equal(h.code, 0, args.join(' '));
    assert.match(h.stdout, /Usage: meshd/);
  }
});

test('auth login/list/use/logout', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  const base = ['--home', home];
  const def = JSON.parse(runMeshd(['init', '--json', ...base]).stdout) as InitJson;
  const work = JSON.parse(runMeshd(['auth', 'login', 'work', '--json', ...base]).stdout) as InitJson;
  assert.notEqual(work.did, def.did);
  const list = runMeshd(['auth', 'list', ...base]).stdout;
  assert.match(list, /^\* work\s/m);
  assert.match(list, /^ {2}default\s/m);
  assert.equal(runMeshd(['auth', 'use', 'default', ...base]).code, 0);
  assert.equal((JSON.parse(runMeshd(['init', '--json', ...base]).stdout) as InitJson).did, def.did);
  assert.equal((JSON.parse(runMeshd(['init', '--json', '--profile', 'work', ...base]).stdout) as InitJson).did, work.did);
  // logout without --yes and without a terminal refuses
  const refused = runMeshd(['auth', 'logout', 'work', ...base], { input: '' });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /--yes/);
  assert.ok(statSync(join(home, 'profiles', 'work', 'identity.json')).isFile());
  assert.equal(runMeshd(['auth', 'logout', 'work', '--yes', ...base]).code, 0);
  assert.doesNotMatch(runMeshd(['auth', 'list', ...base]).stdout, /work/);
  assert.equal(runMeshd(['auth', 'use', 'work', ...base]).code, 1);
});

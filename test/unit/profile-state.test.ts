import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { initProfile, listProfiles, openProfile, removeProfile, setDefaultProfile } from '../../src/identity/profile.js';
import { readJsonFile, writeFileAtomic } from '../../src/identity/state-files.js';
import { MeshdError, StateError, UsageError } from '../../src/errors.js';
import { tempDir } from '../helpers/cli.js';

const mode = (p: string) => statSync(p).mode & 0o777;

test('init is idempotent, private, and two homes give two identities', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'home');
  const a = initProfile(home);
  assert.equal(a.created, true);
  const b = initProfile(home);
  assert.equal(b.created, false);
  assert.equal(b.profile.did, a.profile.did);
  assert.equal(openProfile(home).did, a.profile.did);
  const other = initProfile(join(d.path, 'home2'));
  assert.notEqual(other.profile.did, a.profile.did);
  assert.equal(mode(home), 0o700);
  assert.equal(mode(join(home, 'profiles')), 0o700);
  assert.equal(mode(a.profile.dir), 0o700);
  assert.equal(mode(join(a.profile.dir, 'identity.json')), 0o600);
  // no temp files left behind by atomic writes
  assert.deepEqual(readdirSync(a.profile.dir), ['identity.json']);
});

test('an existing home with loose permissions is tightened', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'loose');
  mkdirSync(home, { mode: 0o755 });
  chmodSync(home, 0o755);
  initProfile(home);
  assert.equal(mode(home), 0o700);
});

test('a truncated or tampered identity file is an error naming the file, never a new identity', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  const { profile } = initProfile(home);
  const file = join(profile.dir, 'identity.json');
  const original = readFileSync(file, 'utf8');
  writeFileSync(file, original.slice(0, 30));
  for (const f of [() => openProfile(home), () => initProfile(home)]) {
    assert.throws(f, (e: unknown) => e instanceof StateError && e.code === 'E_STATE_CORRUPT' && e.message.includes(file));
  }
  // the damaged file is left as it was
  assert.equal(readFileSync(file, 'utf8'), original.slice(0, 30));
  // a key that does not match its DID
  const j = JSON.parse(original) as { ed25519Seed: string };
  j.ed25519Seed = Buffer.alloc(32, 1).toString('base64url');
  writeFileSync(file, JSON.stringify(j));
  assert.throws(() => openProfile(home), /DID does not match/);
});

test('profiles: login creates, use switches, logout removes and moves the default', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'h');
  const def = initProfile(home).profile;
  const work = initProfile(home, 'work').profile;
  assert.notEqual(def.did, work.did);
  assert.deepEqual(
    listProfiles(home).map((p) => [p.name, p.default]),
    [
      ['default', true],
      ['work', false],
    ],
  );
  setDefaultProfile(home, 'work');
  assert.equal(openProfile(home).did, work.did);
  assert.throws(() => setDefaultProfile(home, 'nope'), MeshdError);
  assert.throws(() => initProfile(home, '../evil'), UsageError);
  removeProfile(home, 'work');
  assert.equal(openProfile(home).did, def.did);
  assert.throws(() => removeProfile(home, 'work'), MeshdError);
  assert.throws(() => openProfile(join(d.path, 'empty')), (e: unknown) => e instanceof MeshdError && e.code === 'E_NO_IDENTITY' && /meshd init/.test(e.hint ?? ''));
});

test('writeFileAtomic replaces content whole and readJsonFile reports corruption', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const f = join(d.path, 'x.json');
  assert.equal(readJsonFile(f), undefined);
  writeFileAtomic(f, '{"a":1}');
  assert.deepEqual(readJsonFile(f), { a: 1 });
  assert.equal(mode(f), 0o600);
  writeFileAtomic(f, '{"a":2}', 0o640);
  assert.deepEqual(readJsonFile(f), { a: 2 });
  assert.equal(mode(f), 0o640);
  writeFileSync(f, '{"a":');
  assert.throws(() => readJsonFile(f), StateError);
  assert.throws(() => writeFileAtomic(join(d.path, 'missing-dir', 'y'), 'z'), StateError);
});

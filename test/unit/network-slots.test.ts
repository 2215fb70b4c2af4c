/**
 * Several networks of one identity on disk (control/network-slots.ts): the primary slot is the
 * old single-network layout, others get a directory of their own; `--network NAME|ID` picks one;
 * overlapping prefixes are refused with advice; the isolation rule between meshd tunnels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initProfile } from '../../src/identity/profile.js';
import { writeJoinedNetwork, type JoinedNetwork } from '../../src/control/local-state.js';
import { freeMeshPrefix, ipv4PrefixesOverlap, joinedSlots, refuseOverlappingPrefix, selectSlot, slotFor, slotKey } from '../../src/control/network-slots.js';
import { isolationRule } from '../../src/daemon/routing/isolation.js';
import { MeshdError } from '../../src/errors.js';
import { tempDir } from '../helpers/cli.js';

const ID_A = 'bafyreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const ID_B = 'bafyreibbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

function joined(networkId: string, name: string, meshCIDR: string, joinedAt: string): JoinedNetwork {
  return { version: 1, networkId, anchor: 'did:jwk:x', endpoint: 'http://127.0.0.1:8787', roles: ['node'], embedded: false, name, meshCIDR, joinedAt };
}

const code = (c: string) => (e: unknown) => e instanceof MeshdError && e.code === c;

test('the first network takes the primary slot (the old layout); a second one gets its own directory', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'home');
  const { profile } = initProfile(home);
  // nothing joined: the primary slot, empty
  assert.equal(selectSlot(home, profile).stateDir, profile.dir);
  const first = slotFor(home, profile, ID_A);
  assert.deepEqual([first.primary, first.stateDir, first.runDir], [true, profile.dir, home]);
  writeJoinedNetwork(first.stateDir, joined(ID_A, 'home-net', '10.200.0.0/16', '2026-01-01T00:00:00Z'));
  // one network: commands need no --network
  assert.equal(selectSlot(home, profile).stateDir, profile.dir);
  const second = slotFor(home, profile, ID_B);
  assert.equal(second.primary, false);
  assert.equal(second.stateDir, join(profile.dir, 'networks', slotKey(ID_B)));
  assert.equal(second.runDir, second.stateDir);
  assert.match(slotKey(ID_B), /^[0-9a-f]{12}$/);
  writeJoinedNetwork(second.stateDir, joined(ID_B, 'lab', '10.201.0.0/16', '2026-02-01T00:00:00Z'));
  // each network keeps its slot
  assert.equal(slotFor(home, profile, ID_A).stateDir, profile.dir);
  assert.equal(slotFor(home, profile, ID_B).stateDir, second.stateDir);
  assert.deepEqual(joinedSlots(home, profile).map((s) => [s.name, s.meshCIDR]), [['home-net', '10.200.0.0/16'], ['lab', '10.201.0.0/16']]);
});

test('--network picks by name, id or a start of the id; none with several networks names them all', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'home');
  const { profile } = initProfile(home);
  writeJoinedNetwork(profile.dir, joined(ID_A, 'home-net', '10.200.0.0/16', '2026-01-01T00:00:00Z'));
  writeJoinedNetwork(slotFor(home, profile, ID_B).stateDir, joined(ID_B, 'lab', '10.201.0.0/16', '2026-02-01T00:00:00Z'));
  assert.throws(() => selectSlot(home, profile), (e: unknown) => code('E_NETWORK_AMBIGUOUS')(e) && /"home-net" bafyreia.*"lab" bafyreib/.test((e as Error).message) && /--network/.test((e as MeshdError).hint ?? ''));
  assert.equal(selectSlot(home, profile, 'lab').stateDir, slotFor(home, profile, ID_B).stateDir);
  assert.equal(selectSlot(home, profile, ID_A).stateDir, profile.dir);
  assert.equal(selectSlot(home, profile, 'bafyreib').stateDir, slotFor(home, profile, ID_B).stateDir);
  // too short a start, or one that fits both: not a guess
  assert.throws(() => selectSlot(home, profile, 'bafy'), code('E_NO_NETWORK'));
  assert.throws(() => selectSlot(home, profile, 'bafyrei'), code('E_NETWORK_AMBIGUOUS'));
  assert.throws(() => selectSlot(home, profile, 'nope'), (e: unknown) => code('E_NO_NETWORK')(e) && /it is in: "home-net"/.test((e as Error).message));
});

test('overlapping mesh prefixes are refused with a free prefix to use instead', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const home = join(d.path, 'home');
  const { profile } = initProfile(home);
  writeJoinedNetwork(profile.dir, joined(ID_A, 'home-net', '10.200.0.0/16', '2026-01-01T00:00:00Z'));
  assert.equal(ipv4PrefixesOverlap('10.200.0.0/16', '10.200.5.0/24'), true);
  assert.equal(ipv4PrefixesOverlap('10.0.0.0/8', '10.201.0.0/16'), true);
  assert.equal(ipv4PrefixesOverlap('10.200.0.0/16', '10.201.0.0/16'), false);
  assert.equal(freeMeshPrefix(['10.200.0.0/16', '10.201.0.0/16']), '10.202.0.0/16');
  assert.throws(
    () => refuseOverlappingPrefix(home, profile, '10.200.128.0/17'),
    (e: unknown) => code('E_CONFIG_INVALID')(e) && /overlaps 10\.200\.0\.0\/16 of network "home-net"/.test((e as Error).message) && /--cidr 10\.201\.0\.0\/16/.test((e as MeshdError).hint ?? ''),
  );
  refuseOverlappingPrefix(home, profile, '10.201.0.0/16');
  // a joined network's own prefix is not a clash with itself; another's is, with other advice
  refuseOverlappingPrefix(home, profile, '10.200.0.0/16', ID_A);
  assert.throws(() => refuseOverlappingPrefix(home, profile, '10.200.0.0/16', ID_B), (e: unknown) => code('E_CONFIG_INVALID')(e) && /chosen by its owner/.test((e as MeshdError).hint ?? ''));
});

test('the isolation rule drops forwarding from one meshd tunnel to another', () => {
  assert.deepEqual(isolationRule({ group: 5283 }), ['-m', 'devgroup', '--src-group', '5283', '--dst-group', '5283', '-j', 'DROP']);
});

/**
 * Identity profiles under one home: each profile is a directory with the device's Ed25519 seed
 * and whatever per-network state later commands keep. One profile is the default.
 *
 *   <home>/config.json                { "version": 1, "defaultProfile": "default" }
 *   <home>/profiles/<name>/identity.json   (0600) the device key
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError, StateError, UsageError } from '../errors.js';
import { deriveDeviceKeys, generateEd25519Seed, type DeviceKeys } from './keys.js';
import { formatDidJwk } from './did-jwk.js';
import { ensurePrivateDir, readJsonFile, writeJsonFile } from './state-files.js';

export const DEFAULT_PROFILE = 'default';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface Profile {
  readonly name: string;
  readonly dir: string;
  readonly did: string;
  readonly keys: DeviceKeys;
  readonly createdAt: string;
}

interface IdentityFile {
  version: 1;
  did: string;
  ed25519Seed: string;
  createdAt: string;
}

interface HomeConfig {
  version: 1;
  defaultProfile?: string;
}

export function validateProfileName(name: string): string {
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new UsageError(`invalid profile name "${name}"`, { hint: 'use letters, digits, ".", "_" and "-"' });
  }
  return name;
}

function configPath(home: string): string {
  return join(home, 'config.json');
}

export function profileDir(home: string, name: string): string {
  return join(home, 'profiles', validateProfileName(name));
}

function identityPath(dir: string): string {
  return join(dir, 'identity.json');
}

function readConfig(home: string): HomeConfig {
  const path = configPath(home);
  const c = readJsonFile<HomeConfig>(path);
  if (c === undefined) return { version: 1 };
  if (typeof c !== 'object' || c === null || (c.defaultProfile !== undefined && typeof c.defaultProfile !== 'string')) {
    throw new StateError('E_STATE_CORRUPT', path, `state file ${path} is corrupt (unexpected content)`);
  }
  return c;
}

function writeConfig(home: string, c: HomeConfig): void {
  ensurePrivateDir(home);
  writeJsonFile(configPath(home), c);
}

/** The name of the default profile (`default` when none was chosen). */
export function defaultProfileName(home: string): string {
  return readConfig(home).defaultProfile ?? DEFAULT_PROFILE;
}

function loadIdentity(dir: string, name: string): Profile | undefined {
  const path = identityPath(dir);
  const f = readJsonFile<IdentityFile>(path);
  if (f === undefined) return undefined;
  const corrupt = (why: string) =>
    new StateError('E_STATE_CORRUPT', path, `identity file ${path} is corrupt (${why})`, {
      hint: 'restore it from a backup; meshd will not replace a damaged key with a new one',
    });
  if (typeof f !== 'object' || f === null || f.version !== 1) throw corrupt('unknown format');
  if (typeof f.ed25519Seed !== 'string') throw corrupt('no key');
  const seed = Buffer.from(f.ed25519Seed, 'base64url');
  if (seed.length !== 32 || seed.toString('base64url') !== f.ed25519Seed) throw corrupt('key is not 32 bytes');
  const keys = deriveDeviceKeys(new Uint8Array(seed));
  const did = formatDidJwk(keys.edPublic);
  if (typeof f.did !== 'string' || f.did !== did) throw corrupt('DID does not match the key');
  return { name, dir, did, keys, createdAt: typeof f.createdAt === 'string' ? f.createdAt : '' };
}

/** Open an existing profile (the default when `name` is omitted). */
export function openProfile(home: string, name?: string): Profile {
  const n = name ?? defaultProfileName(home);
  const dir = profileDir(home, n);
  const p = loadIdentity(dir, n);
  if (!p) {
    const hint = n === DEFAULT_PROFILE ? `run \`meshd init${home ? ` --home ${home}` : ''}\`` : `run \`meshd auth login ${n}\``;
    throw new MeshdError('E_NO_IDENTITY', `no device identity in profile "${n}" at ${dir}`, { hint });
  }
  return p;
}

/** Create the profile's identity if it is missing; returns it and whether it was created. */
export function initProfile(home: string, name?: string): { profile: Profile; created: boolean } {
  ensurePrivateDir(home);
  const n = name ?? defaultProfileName(home);
  ensurePrivateDir(join(home, 'profiles'));
  const dir = profileDir(home, n);
  ensurePrivateDir(dir);
  const existing = loadIdentity(dir, n);
  if (existing) return { profile: existing, created: false };
  const seed = generateEd25519Seed();
  const keys = deriveDeviceKeys(seed);
  const did = formatDidJwk(keys.edPublic);
  const createdAt = new Date().toISOString();
  const file: IdentityFile = { version: 1, did, ed25519Seed: Buffer.from(seed).toString('base64url'), createdAt };
  writeJsonFile(identityPath(dir), file, 0o600);
  return { profile: { name: n, dir, did, keys, createdAt }, created: true };
}

export interface ProfileSummary {
  name: string;
  did: string | null;
  default: boolean;
  error?: string;
}

export function listProfiles(home: string): ProfileSummary[] {
  const root = join(home, 'profiles');
  if (!existsSync(root)) return [];
  const def = defaultProfileName(home);
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && NAME.test(d.name))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      try {
        const p = loadIdentity(join(root, name), name);
        return { name, did: p?.did ?? null, default: name === def };
      } catch (e) {
        return { name, did: null, default: name === def, error: (e as Error).message };
      }
    });
}

export function setDefaultProfile(home: string, name: string): void {
  openProfile(home, validateProfileName(name)); // must exist and be readable
  writeConfig(home, { ...readConfig(home), version: 1, defaultProfile: name });
}

/** Delete a profile's directory (keys included). The default moves to another profile if any. */
export function removeProfile(home: string, name: string): void {
  const dir = profileDir(home, name);
  if (!existsSync(dir)) throw new MeshdError('E_PROFILE', `no profile "${name}"`, { hint: 'see `meshd auth list`' });
  rmSync(dir, { recursive: true, force: true });
  const c = readConfig(home);
  if ((c.defaultProfile ?? DEFAULT_PROFILE) === name) {
    const rest = listProfiles(home).filter((p) => p.did !== null);
    const next = rest[0]?.name;
    writeConfig(home, next === undefined ? { version: 1 } : { version: 1, defaultProfile: next });
  }
}

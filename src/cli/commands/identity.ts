/** `meshd init` and `meshd auth …`: the device identity and named profiles. */
import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { action, subcommand, type CommandContext, type Io } from '../program.js';
import { initProfile, listProfiles, openProfile, removeProfile, setDefaultProfile, validateProfileName, type Profile } from '../../identity/profile.js';
import { wgKeyToBase64 } from '../../identity/keys.js';
import { meshIPv4For, meshIPv6For } from '../../identity/mesh-address.js';
import { MeshdError, UsageError } from '../../errors.js';

export function identitySummary(p: Profile) {
  return {
    profile: p.name,
    did: p.did,
    wireguardPublicKey: wgKeyToBase64(p.keys.xPublic),
    meshIP: meshIPv4For(p.did),
    meshIP6: meshIPv6For(p.did),
  };
}

function printIdentity(ctx: CommandContext, p: Profile, created: boolean): void {
  const s = identitySummary(p);
  ctx.print({ ...s, created }, () =>
    [
      created ? `Created a new device identity (profile "${p.name}").` : `Device identity (profile "${p.name}"):`,
      `Your device identity: ${s.did}`,
      `WireGuard public key: ${s.wireguardPublicKey}`,
      `Mesh IP (default network): ${s.meshIP}`,
    ].join('\n'),
  );
}

async function confirm(io: Io, question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
    void io;
  }
}

/** The running daemon of this home uses profile `name`: logging it out would orphan it. */
async function refuseIfRunning(home: string, name: string): Promise<void> {
  const [{ runningDaemonPid }, { callDaemon }, { joinedSlots }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js'), import('../../control/network-slots.js')]);
  const profile = openProfile(home, name);
  // the home's own daemon (the primary network of some profile), and every network of this one
  for (const runDir of new Set([home, ...joinedSlots(home, profile).map((s) => s.runDir)])) {
    const pid = runningDaemonPid(runDir);
    if (pid === null) continue;
    const s = await callDaemon<{ identity?: { did?: string } }>(runDir, 'GET', '/v0/status').catch(() => undefined);
    if (s === undefined || s.identity?.did === profile.did) {
      throw new MeshdError('E_DAEMON_RUNNING', `profile "${name}" is in use by the running meshd (pid ${pid})`, { hint: 'run `meshd down` first' });
    }
  }
}

export function registerIdentity(program: Command, io: Io): void {
  action(subcommand(program, 'init', 'create this device\'s identity if missing and print it'), io, (ctx) => {
    const { profile, created } = initProfile(ctx.home, ctx.profile);
    printIdentity(ctx, profile, created);
  });

  const auth = subcommand(program, 'auth', 'manage named identity profiles');
  action(subcommand(auth, 'login <name>', 'create the profile NAME if needed and make it the default'), io, (ctx, name: string) => {
    validateProfileName(name);
    const { profile, created } = initProfile(ctx.home, name);
    setDefaultProfile(ctx.home, name);
    printIdentity(ctx, profile, created);
  });

  action(subcommand(auth, 'list', 'list profiles; * marks the default'), io, (ctx) => {
    const profiles = listProfiles(ctx.home);
    ctx.print(profiles, () =>
      profiles.length === 0
        ? 'No profiles yet. Run `meshd init` or `meshd auth login NAME`.'
        : profiles.map((p) => `${p.default ? '*' : ' '} ${p.name}\t${p.did ?? `(unreadable: ${p.error ?? 'no identity'})`}`).join('\n'),
    );
  });

  action(subcommand(auth, 'use <name>', 'make NAME the default profile'), io, (ctx, name: string) => {
    setDefaultProfile(ctx.home, name);
    const p = openProfile(ctx.home, name);
    ctx.print({ profile: name, did: p.did, default: true }, `Default profile is now "${name}" (${p.did}).`);
  });

  const logout = subcommand(auth, 'logout <name>', 'delete the profile NAME and its keys');
  logout.option('-y, --yes', 'do not ask for confirmation');
  action(logout, io, async (ctx, name: string) => {
    validateProfileName(name);
    const yes = Boolean(logout.opts().yes);
    const exists = listProfiles(ctx.home).some((p) => p.name === name);
    if (!exists) throw new MeshdError('E_PROFILE', `no profile "${name}"`, { hint: 'see `meshd auth list`' });
    if (!yes) {
      if (!process.stdin.isTTY) throw new UsageError(`refusing to delete the keys of "${name}" without confirmation`, { hint: 'add --yes' });
      const ok = await confirm(io, `Delete profile "${name}" and its private key? This cannot be undone. [y/N] `);
      if (!ok) throw new MeshdError('E_PROFILE', 'not deleted');
    }
    await refuseIfRunning(ctx.home, name);
    removeProfile(ctx.home, name);
    ctx.print({ profile: name, removed: true }, `Profile "${name}" removed.`);
  });
}

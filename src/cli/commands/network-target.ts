/**
 * Which network a command acts on (`--network NAME|ID`, else the only one; see
 * control/network-slots.ts): the control context for its state and the directory of its daemon.
 */
import { MeshdError } from '../../errors.js';
import { openProfile, type Profile } from '../../identity/profile.js';
import { joinedSlots, primarySlot, selectSlot, type JoinedSlot, type NetworkSlot } from '../../control/network-slots.js';
import type { ControlContext } from '../../control/session.js';
import type { CommandContext } from '../program.js';

export interface NetworkTarget {
  cc: ControlContext;
  slot: NetworkSlot | JoinedSlot;
  /** Where the network's daemon keeps its socket, lock and log. */
  runDir: string;
}

/** The identity's context with no network chosen (create and join pick the network's slot). */
export function identityContext(ctx: CommandContext, profile?: Profile): ControlContext {
  return { home: ctx.home, profile: profile ?? openProfile(ctx.home, ctx.profile), progress: (s) => ctx.progress(s) };
}

export function networkTarget(ctx: CommandContext, profile?: Profile): NetworkTarget {
  const p = profile ?? openProfile(ctx.home, ctx.profile);
  const slot = selectSlot(ctx.home, p, ctx.network);
  return { cc: { ...identityContext(ctx, p), ...(slot.primary ? {} : { stateDir: slot.stateDir }) }, slot, runDir: slot.runDir };
}

/**
 * The daemon directory of the chosen network; the home when there is no identity yet (nothing
 * runs then, and the commands say so as they always did).
 */
export function daemonDir(ctx: CommandContext): string {
  let profile: Profile;
  try {
    profile = openProfile(ctx.home, ctx.profile);
  } catch (e) {
    if (e instanceof MeshdError && e.code === 'E_NO_IDENTITY' && ctx.network === undefined) return ctx.home;
    throw e;
  }
  return networkTarget(ctx, profile).runDir;
}

/** Every network of the identity with its daemon directory (the primary slot when none). */
export function allTargets(ctx: CommandContext): Array<{ slot: NetworkSlot | JoinedSlot; runDir: string }> {
  const profile = openProfile(ctx.home, ctx.profile);
  const slots = joinedSlots(ctx.home, profile);
  return (slots.length > 0 ? slots : [primarySlot(ctx.home, profile)]).map((slot) => ({ slot, runDir: slot.runDir }));
}

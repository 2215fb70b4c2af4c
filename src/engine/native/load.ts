/**
 * Finds and loads native/build/Release/meshd_native.node. Never throws: when the addon is
 * missing, stale or fails to load, the result says why and callers fall back to the pure
 * TypeScript paths (node:crypto, node:dgram). MESHD_NATIVE_PATH overrides the location.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshdError } from '../../errors.js';
import { NATIVE_ABI_VERSION, type NativeAddon } from './addon.js';

export type NativeLoadResult = { addon: NativeAddon; path: string } | { addon: null; reason: string };

const ADDON_RELATIVE = join('native', 'build', 'Release', 'meshd_native.node');
const REQUIRED_FUNCTIONS = [
  'tunOpen',
  'fdRead',
  'fdWrite',
  'fdClose',
  'pollStart',
  'pollStop',
  'pollRef',
  'udpOpen',
  'udpLocalAddress',
  'udpRecv',
  'udpSend',
  'aeadSeal',
  'aeadOpen',
] as const;

/** The addon path: MESHD_NATIVE_PATH, else the nearest ancestor folder holding native/build/Release/meshd_native.node. */
export function findNativeAddon(env: NodeJS.ProcessEnv = process.env): string | null {
  const override = env.MESHD_NATIVE_PATH;
  if (override) return existsSync(override) ? override : null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Load the addon, or say why it cannot be used. */
export function tryLoadNative(env: NodeJS.ProcessEnv = process.env): NativeLoadResult {
  if (process.platform !== 'linux') return { addon: null, reason: `the native addon supports Linux only (this is ${process.platform})` };
  const path = findNativeAddon(env);
  if (path === null) {
    return {
      addon: null,
      reason: env.MESHD_NATIVE_PATH
        ? `MESHD_NATIVE_PATH points at a missing file`
        : 'native addon not built (run: npx node-gyp rebuild --directory=native)',
    };
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (e) {
    return { addon: null, reason: `native addon failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
  const addon = mod as Partial<NativeAddon> | null;
  if (addon === null || typeof addon !== 'object') return { addon: null, reason: 'native addon exports nothing' };
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    return {
      addon: null,
      reason: `native addon is stale (ABI ${String(addon.abiVersion)}, want ${NATIVE_ABI_VERSION}); rebuild it`,
    };
  }
  for (const fn of REQUIRED_FUNCTIONS) {
    if (typeof addon[fn] !== 'function') return { addon: null, reason: `native addon lacks ${fn}` };
  }
  return { addon: addon as NativeAddon, path };
}

/** The addon, or null when it cannot be used (see tryLoadNative for the reason). */
export function loadNative(env: NodeJS.ProcessEnv = process.env): NativeAddon | null {
  return tryLoadNative(env).addon;
}

/** True when MESHD_PURE_TS=1 asks for the pure TypeScript crypto and UDP paths. */
export function pureTsRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MESHD_PURE_TS === '1';
}

/**
 * False when MESHD_NO_OFFLOAD=1 turns the segmentation offloads off (UDP GSO/GRO on the socket,
 * virtio headers with TSO/GRO on the TUN); the data plane then moves one packet per datagram.
 */
export function offloadRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MESHD_NO_OFFLOAD !== '1';
}

/** How a component with a native and a pure-TS implementation is asked to pick one. */
export interface ImplementationChoice<PureTs extends string> {
  /** 'auto' (default): native unless MESHD_PURE_TS=1 or the addon is unavailable. */
  implementation?: 'auto' | 'native' | PureTs;
  /** An already loaded addon (or null for none); default: load it. */
  addon?: NativeAddon | null;
  env?: NodeJS.ProcessEnv;
}

/**
 * The addon to use, or null for the pure-TS implementation (named `pureTs`): null when that is
 * asked for, or for 'auto' under MESHD_PURE_TS=1 or without a usable addon. Asking for 'native'
 * when the addon is unavailable throws E_NATIVE ("native <what> unavailable: <reason>").
 */
export function chooseNative<PureTs extends string>(
  options: ImplementationChoice<PureTs>,
  pureTs: PureTs,
  what: string,
): NativeAddon | null {
  const env = options.env ?? process.env;
  const want = options.implementation ?? 'auto';
  if (want === pureTs || (want === 'auto' && pureTsRequested(env))) return null;
  let addon: NativeAddon | null;
  let reason = 'no addon given';
  if (options.addon !== undefined) addon = options.addon;
  else {
    const loaded = tryLoadNative(env);
    addon = loaded.addon;
    if (loaded.addon === null) reason = loaded.reason;
  }
  if (addon !== null || want !== 'native') return addon;
  throw new MeshdError('E_NATIVE', `native ${what} unavailable: ${reason}`, {
    hint: 'build it with `npx node-gyp rebuild --directory=native`, or set MESHD_PURE_TS=1',
  });
}

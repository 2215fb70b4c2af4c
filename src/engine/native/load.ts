/**
 * Finds and loads native/build/Release/meshd_native.node. Never throws: when the addon is
 * missing, stale or fails to load, the result says why and callers fall back to the pure
 * TypeScript paths (node:crypto, node:dgram). MESHD_NATIVE_PATH overrides the location.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

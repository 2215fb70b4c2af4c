/** `meshd version [--json]`: the version, the runtime, and which data-path implementation loads. */
import type { Command } from 'commander';
import { MESHD_VERSION } from '../../version.js';
import { action, subcommand, type Io } from '../program.js';

export function registerVersion(program: Command, io: Io): void {
  action(subcommand(program, 'version', 'the meshd version, Node.js and the native addon'), io, async (ctx) => {
    const { tryLoadNative, pureTsRequested } = await import('../../engine/native/load.js');
    const n = tryLoadNative();
    const native = pureTsRequested() ? 'off (MESHD_PURE_TS)' : n.addon ? 'loaded' : `unavailable (${n.reason})`;
    const data = { version: MESHD_VERSION, node: process.versions.node, platform: process.platform, arch: process.arch, openssl: process.versions.openssl, native: { loaded: n.addon !== null, ...(n.addon ? { path: n.path } : { reason: n.reason }) } };
    ctx.print(data, () => [`meshd ${MESHD_VERSION}`, `node ${process.versions.node} (${process.platform}/${process.arch}, OpenSSL ${process.versions.openssl})`, `native addon: ${native}`].join('\n'));
  });
}

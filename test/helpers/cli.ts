/** Run the real `meshd` binary (bin/meshd.js → dist) as a user would. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MESHD_BIN = new URL('../../../bin/meshd.js', import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runMeshd(args: string[], opts: SpawnSyncOptions & { env?: NodeJS.ProcessEnv } = {}): CliResult {
  const env = { ...process.env, ...opts.env };
  delete env.MESHD_DEBUG;
  if (opts.env?.MESHD_DEBUG) env.MESHD_DEBUG = opts.env.MESHD_DEBUG;
  const r = spawnSync(process.execPath, [MESHD_BIN, ...args], { encoding: 'utf8', timeout: 60_000, ...opts, env });
  return { code: r.status ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = 'meshd-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Where meshd keeps its state: --home, else MESHD_HOME, else the platform default. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (process.getuid?.() === 0) return '/var/lib/meshd';
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.config'), 'meshd');
}

export function resolveHome(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = option ?? (env.MESHD_HOME && env.MESHD_HOME.length > 0 ? env.MESHD_HOME : undefined);
  return resolve(chosen ?? defaultHome(env));
}

/**
 * The embedded DWN as commands use it: a network created without --endpoint lives on this
 * machine's DWN (127.0.0.1:8787, storage in `<home>/dwn`). When no server answers there, a
 * command starts one for as long as it runs; `meshd dwn serve` or the daemon keeps one up.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { MeshdError } from '../errors.js';
import { DEFAULT_DWN_PORT, DWN_INSTANCE_HEADER, startDwnServer, type RunningDwnServer } from '../dwn/server.js';
import { httpGet } from '../dwn/http-request.js';

export const EMBEDDED_HOST = '127.0.0.1';

export function embeddedEndpoint(port = DEFAULT_DWN_PORT): string {
  return `http://${EMBEDDED_HOST}:${port}`;
}

export function embeddedDataDir(home: string): string {
  return join(home, 'dwn');
}

/** What the embedded DWN of `home` answers with in DWN_INSTANCE_HEADER. */
export function embeddedInstanceId(home: string): string {
  return createHash('sha256').update(`meshd-home|${resolve(home)}`).digest('hex').slice(0, 32);
}

/**
 * Whether a DWN server answers `GET /health` at `endpoint`, and which instance it says it is
 * (null: it does not say — not a meshd home's embedded DWN).
 */
export async function probeDwn(endpoint: string, timeoutMs = 1500): Promise<{ up: boolean; instance: string | null }> {
  try {
    // node:http, not fetch: a daemon that keeps the embedded DWN probes it, and fetch costs it ~10 MiB
    const res = await httpGet(new URL('/health', endpoint).href, AbortSignal.timeout(timeoutMs));
    return { up: res.status >= 200 && res.status < 300, instance: res.header(DWN_INSTANCE_HEADER) };
  } catch {
    return { up: false, instance: null };
  }
}

/** True when a DWN server answers `GET /health` at `endpoint`. */
export async function isDwnUp(endpoint: string, timeoutMs = 1500): Promise<boolean> {
  return (await probeDwn(endpoint, timeoutMs)).up;
}

/** The error for an embedded endpoint where another meshd home's DWN answers. */
export function foreignDwnError(endpoint: string): MeshdError {
  return new MeshdError('E_CONFIG_INVALID', `the DWN answering at ${endpoint} is another meshd home's embedded DWN, not this home's`, {
    hint: "stop the other home's meshd (`meshd down --home OTHER`), or create this network on another port",
  });
}

/**
 * A port for a new network's embedded DWN: `preferred` unless another meshd home's DWN answers
 * there, else the next of the following ten where none does.
 */
export async function freeEmbeddedPort(home: string, preferred = DEFAULT_DWN_PORT): Promise<number> {
  const mine = embeddedInstanceId(home);
  for (let port = preferred; port < preferred + 11 && port <= 65535; port++) {
    const p = await probeDwn(embeddedEndpoint(port));
    if (!p.up || p.instance === null || p.instance === mine) return port;
  }
  throw new MeshdError('E_CONFIG_INVALID', `ports ${preferred} to ${preferred + 10} all serve other meshd homes' embedded DWNs`, {
    hint: 'give the network a DWN of its own with --endpoint URL',
  });
}

export interface EmbeddedLease {
  endpoint: string;
  /** The server this lease started, if it had to start one. */
  server: RunningDwnServer | undefined;
  release(): Promise<void>;
}

/**
 * Use the embedded DWN at `endpoint`, starting it from `<home>/dwn` if nothing answers there.
 * `listen` is the address a server started here binds to (default 127.0.0.1; other machines
 * need an address they can reach, e.g. 0.0.0.0).
 */
export async function leaseEmbeddedDwn(home: string, endpoint = embeddedEndpoint(), listen = EMBEDDED_HOST): Promise<EmbeddedLease> {
  const p = await probeDwn(endpoint);
  if (p.up && p.instance !== null && p.instance !== embeddedInstanceId(home)) throw foreignDwnError(endpoint);
  if (p.up) return { endpoint, server: undefined, release: async () => {} };
  const port = Number(new URL(endpoint).port || 80);
  const server = await startDwnServer({ dataDir: embeddedDataDir(home), port, host: listen, instanceId: embeddedInstanceId(home) });
  return { endpoint: server.url, server, release: () => server.stop() };
}

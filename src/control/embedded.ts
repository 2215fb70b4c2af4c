/**
 * The embedded DWN as commands use it: a network created without --endpoint lives on this
 * machine's DWN (127.0.0.1:8787, storage in `<home>/dwn`). When no server answers there, a
 * command starts one for as long as it runs; `meshd dwn serve` or the daemon keeps one up.
 */
import { join } from 'node:path';
import { DEFAULT_DWN_PORT, startDwnServer, type RunningDwnServer } from '../dwn/server.js';

export const EMBEDDED_HOST = '127.0.0.1';

export function embeddedEndpoint(port = DEFAULT_DWN_PORT): string {
  return `http://${EMBEDDED_HOST}:${port}`;
}

export function embeddedDataDir(home: string): string {
  return join(home, 'dwn');
}

/** True when a DWN server answers `GET /health` at `endpoint`. */
export async function isDwnUp(endpoint: string, timeoutMs = 1500): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health', endpoint), { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
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
  if (await isDwnUp(endpoint)) return { endpoint, server: undefined, release: async () => {} };
  const port = Number(new URL(endpoint).port || 80);
  const server = await startDwnServer({ dataDir: embeddedDataDir(home), port, host: listen });
  return { endpoint: server.url, server, release: () => server.stop() };
}

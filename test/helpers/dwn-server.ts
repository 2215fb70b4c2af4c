/**
 * A real @web5/dwn-server for tests: started on 127.0.0.1 on a free port with its storage in a
 * fresh temporary directory, stopped (and the directory removed) by `stop()`. One per test file
 * — start-up takes about a second. `restart()` brings it back on the same port and storage, for
 * tests of a DWN that goes away and returns.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDwnServer, type RunningDwnServer } from '../../src/dwn/server.js';

export interface TestDwn {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly server: RunningDwnServer;
  /** Stop the server, keep the storage. */
  halt(): Promise<void>;
  /** Start again on the same port with the same storage. */
  restart(): Promise<void>;
  /** Stop the server and remove its storage. */
  stop(): Promise<void>;
}

/** `eventData: false`: events without their records' data, as another DWN sends them (every change is read). */
export async function startTestDwn(opts: { eventData?: boolean } = {}): Promise<TestDwn> {
  const root = mkdtempSync(join(tmpdir(), `meshd-dwn-${process.pid}-`));
  const dataDir = join(root, 'dwn');
  const extra = opts.eventData === false ? { eventData: false } : {};
  let server = await startDwnServer({ dataDir, port: 0, host: '127.0.0.1', ...extra });
  const port = server.port;
  const t: TestDwn = {
    url: server.url,
    port,
    dataDir,
    get server() {
      return server;
    },
    halt: () => server.stop(),
    async restart() {
      await server.stop();
      server = await startDwnServer({ dataDir, port, host: '127.0.0.1', ...extra });
    },
    async stop() {
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return t;
}

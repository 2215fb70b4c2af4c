/** `meshd dwn serve`: the embedded DWN in the foreground. */
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { UsageError } from '../../errors.js';
import { waitForStop } from '../../util/signals.js';
import { parsePort } from './network.js';

export function registerDwn(program: Command, io: Io): void {
  const dwn = subcommand(program, 'dwn', 'the embedded DWN server');
  const serve = subcommand(dwn, 'serve', 'run the embedded DWN (storage in the state directory unless --storage) until interrupted')
    .option('--port <port>', 'TCP port', '8787')
    .option('--listen <addr>', 'address to listen on', '127.0.0.1')
    .option(
      '--storage <url>',
      'postgres://USER:PASSWORD@HOST:PORT/DATABASE, sqlite://DIR/FILE.db or level://DIR (default: SQLite in the state directory)',
    );
  action(serve, io, async (ctx) => {
    const o = serve.opts<{ port: string; listen: string; storage?: string }>();
    const port = parsePort(o.port);
    const { isIP } = await import('node:net');
    if (isIP(o.listen) === 0) throw new UsageError(`--listen "${o.listen}" is not an IP address`);
    const { describeDwnStorage, parseDwnStorage, startDwnServer } = await import('../../dwn/server.js');
    const storage = o.storage !== undefined ? parseDwnStorage(o.storage) : undefined;
    const { embeddedDataDir, embeddedInstanceId } = await import('../../control/embedded.js');
    const { ensurePrivateDir } = await import('../../identity/state-files.js');
    ensurePrivateDir(ctx.home);
    const dataDir = embeddedDataDir(ctx.home);
    const server = await startDwnServer({
      dataDir,
      port,
      host: o.listen,
      inheritLogs: !ctx.json,
      logLevel: 'warn',
      instanceId: embeddedInstanceId(ctx.home),
      ...(storage ? { storage } : {}),
    });
    const where = describeDwnStorage(server.storage);
    // listening on every address: the URL other machines use is a LAN address, not loopback
    const { firstLanAddress } = await import('../../util/local-address.js');
    const lan = o.listen === '0.0.0.0' || o.listen === '::' ? firstLanAddress() : undefined;
    const publicUrl = lan !== undefined ? `http://${lan}:${server.port}` : undefined;
    const info = { url: server.url, host: server.host, port: server.port, dataDir, storage: where, pid: server.pid, ...(publicUrl ? { publicUrl } : {}) };
    ctx.print(info, `DWN listening on ${server.url}${publicUrl ? `; other machines reach it at ${publicUrl}` : ''} (storage: ${where}); Ctrl-C stops it.`);
    const stopWait = new AbortController();
    const reason = await Promise.race([waitForStop({ signal: stopWait.signal }), server.exited.then((c) => `exit:${c}`)]);
    stopWait.abort(); // the server exited first: stop listening for signals
    if (reason.startsWith('exit:')) throw new UsageError(`the DWN server stopped unexpectedly (${reason.slice(5)})`);
    await server.stop();
  });
}

/** Entry point of the `meshd` binary. */
import { runCli } from './run.js';
import { processIo } from './program.js';

// `meshd … | head` closes the pipe early: stop quietly instead of dying with a stack trace
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? (process.exitCode ?? 0) : 1));
}

process.exitCode = await runCli(process.argv.slice(2), processIo);

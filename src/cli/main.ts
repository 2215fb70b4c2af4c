/** Entry point of the `meshd` binary. */
import { runCli } from './run.js';
import { processIo } from './program.js';

process.exitCode = await runCli(process.argv.slice(2), processIo);

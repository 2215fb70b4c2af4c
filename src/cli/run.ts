/** Build the command tree and run one invocation; returns the exit code. */
import { createRootProgram, reportError, type Io } from './program.js';
import { registerCommands } from './commands/index.js';

export async function runCli(argv: string[], io: Io): Promise<number> {
  const program = createRootProgram(io);
  registerCommands(program, io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    return reportError(e, io);
  }
}

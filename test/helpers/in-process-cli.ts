/** Run the real command tree in this process (no child start-up), capturing what it prints. */
import { runCli } from '../../src/cli/run.js';
import type { Io } from '../../src/cli/program.js';

export interface CliRun {
  code: number;
  stdout: string;
  /** stderr, one entry per line. */
  stderr: string[];
}

export async function runCliCaptured(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { stdout: (s) => out.push(s), stderr: (s) => err.push(...s.replace(/\n$/, '').split('\n')) };
  const code = await runCli(args, io);
  return { code, stdout: out.join('\n'), stderr: err };
}

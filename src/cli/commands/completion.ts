/** `meshd completion bash|zsh|fish` and `meshd man`: generated from the command tree. */
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { MESHD_VERSION } from '../../version.js';
import { action, subcommand, type Io } from '../program.js';
import { bashCompletion, describeCommands, fishCompletion, manPage, zshCompletion } from './command-docs.js';

function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

export function registerCompletion(program: Command, io: Io): void {
  const completion = subcommand(program, 'completion <shell>', 'print the shell completion script for bash, zsh or fish');
  action(completion, io, (_ctx, shell: string) => {
    const tree = describeCommands(rootOf(completion));
    const gen = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[shell];
    if (!gen) throw new UsageError(`no completion for "${shell}"`, { hint: 'bash, zsh or fish' });
    io.stdout(gen(tree));
  });

  const man = subcommand(program, 'man', 'print the meshd(1) man page (roff); view it with `meshd man | man -l -`');
  action(man, io, () => {
    // No date unless a build gives one (reproducible builds): the page is the same wherever it is made.
    const epoch = Number(process.env.SOURCE_DATE_EPOCH);
    const date = Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000).toISOString().slice(0, 10) : '';
    io.stdout(manPage(describeCommands(rootOf(man)), MESHD_VERSION, date));
  });
}

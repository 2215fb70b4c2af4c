/**
 * The command tree. Every command gets the global options (--home, --json) whether they are
 * written before or after the command name, and runs through `action()`, which turns errors
 * into one line on stderr and the right exit code.
 */
import { Command, CommanderError, Option } from 'commander';
import { MeshdError, UsageError } from '../errors.js';
import { resolveHome } from '../identity/home.js';
import { MESHD_VERSION } from '../version.js';

export interface GlobalOptions {
  home: string;
  json: boolean;
  /** --profile NAME: the identity profile to act as (default: the home's default profile). */
  profile: string | undefined;
  /** --network NAME|ID: the network to act on when the identity is in several. */
  network: string | undefined;
}

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface CommandContext extends GlobalOptions {
  io: Io;
  /** Print data: JSON when --json, otherwise the human text. */
  print(data: unknown, human: string | (() => string)): void;
  /** Progress for long operations (stderr, suppressed with --json). */
  progress(s: string): void;
}

export const processIo: Io = {
  stdout: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
  stderr: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
};

function addGlobals(cmd: Command): Command {
  return cmd
    .addOption(new Option('--home <dir>', 'state directory (env MESHD_HOME)'))
    .addOption(new Option('--json', 'print machine-readable JSON'))
    .addOption(new Option('--profile <name>', 'identity profile to use (default: the default profile)'))
    .addOption(new Option('--network <name|id>', 'the network to act on, by name or id (needed when this identity is in several)'));
}

/** Create a subcommand carrying the global options. */
export function subcommand(parent: Command, nameAndArgs: string, description: string): Command {
  const [name, ...args] = nameAndArgs.split(' ');
  const cmd = addGlobals(new Command(name)).description(description);
  if (args.length > 0) cmd.arguments(args.join(' '));
  cmd.exitOverride();
  cmd.configureOutput(parent.configureOutput());
  cmd.showHelpAfterError(false);
  parent.addCommand(cmd);
  return cmd;
}

export function makeContext(cmd: Command, io: Io): CommandContext {
  const o = cmd.optsWithGlobals() as { home?: string; json?: boolean; profile?: string; network?: string };
  const json = Boolean(o.json);
  return {
    home: resolveHome(o.home),
    json,
    profile: o.profile,
    network: o.network,
    io,
    print(data, human) {
      if (json) io.stdout(JSON.stringify(data, null, 2));
      else io.stdout(typeof human === 'function' ? human() : human);
    },
    progress(s) {
      if (!json) io.stderr(s);
    },
  };
}

/** Wrap a command body: exit code and error printing are handled by `runCli`. */
export function action<A extends unknown[]>(
  cmd: Command,
  io: Io,
  body: (ctx: CommandContext, ...args: A) => Promise<void> | void,
): Command {
  cmd.action(async (...raw: unknown[]) => {
    const ctx = makeContext(cmd, io);
    // commander passes (...positional, options, command); drop the last two.
    const args = raw.slice(0, -2) as A;
    await body(ctx, ...args);
  });
  return cmd;
}

export function createRootProgram(io: Io): Command {
  const program = addGlobals(new Command('meshd'));
  program
    .description('WireGuard mesh VPN with no accounts, no coordination server and no company')
    .version(MESHD_VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s.replace(/\n$/, '')), writeErr: (s) => io.stderr(s.replace(/\n$/, '')) })
    .showHelpAfterError(false);
  return program;
}

/** Map any thrown value to an exit code, printing one line (stack only with MESHD_DEBUG=1). */
export function reportError(e: unknown, io: Io): number {
  const debug = process.env.MESHD_DEBUG === '1';
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    // commander already printed its message
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof UsageError) {
    io.stderr(`meshd: ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    if (debug && e.stack) io.stderr(e.stack);
    return 2;
  }
  if (e instanceof MeshdError) {
    io.stderr(`meshd: ${e.message}${e.hint ? ` — ${e.hint}` : ''}`);
    if (debug && e.stack) io.stderr(e.stack);
    return 1;
  }
  const msg = e instanceof Error ? e.message : String(e);
  io.stderr(`meshd: ${msg.split('\n')[0]}`);
  if (debug && e instanceof Error && e.stack) io.stderr(e.stack);
  return 1;
}

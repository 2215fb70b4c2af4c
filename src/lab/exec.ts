/**
 * Running one command, in the root namespace or inside a named network namespace
 * (`ip netns exec NAME …`, which setns()es and then execs, so the pid is the command's own).
 * `exec` never throws on a non-zero exit (the caller decides); `run` does. A command that
 * outlives its timeout is killed by its pid and reported as E_TIMEOUT.
 */
import { spawn, spawnSync } from 'node:child_process';
import { LabError } from './errors.js';

/** A namespace by name, or an object that has one; null means the root namespace. */
export type NsRef = string | { readonly name: string } | null;

export interface ExecResult {
  /** Exit code; null when the command died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Default 10 000 ms. */
  timeoutMs?: number;
  /** Written to the command's stdin (then closed). */
  input?: string | Buffer;
  /** Extra environment variables (added to this process's environment). */
  env?: Record<string, string>;
}

export const DEFAULT_EXEC_TIMEOUT_MS = 10_000;

export function nsName(ns: NsRef): string | null {
  if (ns === null) return null;
  return typeof ns === 'string' ? ns : ns.name;
}

/** The argv that runs `argv` inside `ns`. */
export function nsArgv(ns: NsRef, argv: readonly string[]): string[] {
  if (argv.length === 0) throw new LabError('E_LAB', 'empty command');
  const name = nsName(ns);
  return name === null ? [...argv] : ['ip', 'netns', 'exec', name, ...argv];
}

function describe(argv: readonly string[]): string {
  return argv.join(' ');
}

export function exec(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const full = nsArgv(ns, argv);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      reject(
        new LabError('E_TIMEOUT', `timed out after ${timeoutMs} ms: ${describe(full)}`, {
          argv: full,
          stderr: Buffer.concat(err).toString(),
        }),
      );
    }, timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new LabError('E_LAB', `cannot run ${describe(full)}: ${e.message}`, { argv: full, cause: e }));
    });
    child.on('close', (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        /* the command may exit before reading its input */
      });
      child.stdin!.end(opts.input);
    }
  });
}

/** Like exec, but a non-zero exit is a LabError; resolves with stdout. */
export async function run(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await exec(ns, argv, opts);
  if (r.code !== 0) {
    const full = nsArgv(ns, argv);
    throw new LabError('E_LAB', `command failed (${r.code ?? r.signal}): ${describe(full)}: ${r.stderr.trim()}`, {
      argv: full,
      stderr: r.stderr,
    });
  }
  return r.stdout;
}

/** Synchronous exec, for exit paths where nothing asynchronous runs any more. */
export function execSync(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): ExecResult {
  const full = nsArgv(ns, argv);
  const r = spawnSync(full[0]!, full.slice(1), {
    input: opts.input,
    timeout: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ? r.stdout.toString() : '',
    stderr: r.stderr ? r.stderr.toString() : r.error ? r.error.message : '',
  };
}

/** True when `bin` is an executable on PATH. */
export function onPath(bin: string): boolean {
  if (!/^[A-Za-z0-9._+-]+$/.test(bin)) return false;
  return execSync(null, ['sh', '-c', `command -v ${bin}`], { timeoutMs: 5000 }).code === 0;
}

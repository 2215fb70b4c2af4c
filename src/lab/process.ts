/**
 * A long-running process inside a namespace, tracked by its pid. Its stdout and stderr are kept
 * (the last `maxCapture` characters of each, and of both interleaved) and optionally appended to a
 * log file, so a failing test can print what a server said. `stop` sends SIGTERM, then SIGKILL
 * after a grace period; `killSync` is for exit paths. Never signals anything but its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { LabError } from './errors.js';
import { nsArgv, nsName, type NsRef } from './exec.js';

export interface SpawnOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Also append stdout and stderr to this file. */
  logFile?: string;
  /** Characters of output kept in memory per stream (the tail). Default 1 MiB. */
  maxCapture?: number;
  /** 'pipe' to write to the process's stdin (`proc.stdin`). Default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /** A short label for messages; defaults to the program name. */
  label?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const DEFAULT_MAX_CAPTURE = 1 << 20;

class Tail {
  private text = '';
  constructor(private readonly max: number) {}
  push(s: string): void {
    this.text += s;
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }
  get value(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

export class LabProcess {
  readonly ns: string | null;
  readonly argv: readonly string[];
  readonly label: string;
  /** The pid (the command's own: `ip netns exec` execs it). */
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ProcessExit>;
  /** The process's stdin when spawned with stdin: 'pipe'. */
  readonly stdin: Writable | null;

  /** The underlying child (its stdout/stderr are already being read; add listeners, do not pause). */
  readonly child: ChildProcess;
  private readonly out: Tail;
  private readonly err: Tail;
  private readonly all: Tail;
  private readonly log: WriteStream | undefined;
  private exit: ProcessExit | undefined;
  /** Set when the pid has been reaped: it may be reused from then on, so it is never signalled. */
  private reaped = false;
  private readonly listeners = new Set<() => void>();

  constructor(ns: NsRef, argv: readonly string[], opts: SpawnOptions = {}) {
    this.ns = nsName(ns);
    this.argv = [...argv];
    this.label = opts.label ?? argv[0] ?? '?';
    const max = opts.maxCapture ?? DEFAULT_MAX_CAPTURE;
    this.out = new Tail(max);
    this.err = new Tail(max);
    this.all = new Tail(max);
    const full = nsArgv(ns, argv);
    this.child = spawn(full[0]!, full.slice(1), {
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    if (this.child.pid === undefined) {
      // spawn failed synchronously (ENOENT of `ip` itself); the 'error' event follows.
      this.child.on('error', () => {});
      throw new LabError('E_LAB', `cannot spawn ${full.join(' ')}`, { argv: full });
    }
    this.pid = this.child.pid;
    this.stdin = this.child.stdin;
    this.log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    this.log?.on('error', () => {});
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => this.onData(this.out, s));
    this.child.stderr!.on('data', (s: string) => this.onData(this.err, s));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.onData(this.err, `\n[lab] spawn error: ${e.message}\n`);
      });
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.exit) return;
        this.exit = { code, signal };
        this.log?.end();
        this.notify();
        resolve(this.exit);
      };
      // 'close' waits for the output streams; a grandchild that keeps them open must not make
      // the process look alive, so 'exit' finishes too, a moment later.
      this.child.on('exit', (code, signal) => {
        this.reaped = true;
        setTimeout(() => finish(code, signal), 200).unref();
      });
      this.child.on('close', finish);
    });
  }

  private onData(t: Tail, s: string): void {
    t.push(s);
    this.all.push(s);
    this.log?.write(s);
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** True until the process has exited and its streams closed. */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** Exit status once exited. */
  get exitStatus(): ProcessExit | undefined {
    return this.exit;
  }

  stdout(): string {
    return this.out.value;
  }
  stderr(): string {
    return this.err.value;
  }
  /** stdout and stderr interleaved in arrival order. */
  output(): string {
    return this.all.value;
  }

  /**
   * Waits until the output (stdout and stderr) matches `pattern`; resolves with the match.
   * Rejects with E_TIMEOUT, or E_LAB when the process exits first; both carry the output tail.
   */
  waitFor(pattern: RegExp | string, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = re.exec(this.all.value);
        if (m) {
          finish();
          resolve(m);
          return true;
        }
        if (this.exit) {
          finish();
          reject(
            new LabError('E_LAB', `${this.label} (pid ${this.pid}) exited (${this.exit.code ?? this.exit.signal}) before printing ${re}`, {
              argv: this.argv,
              stderr: this.output().slice(-4000),
            }),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new LabError('E_TIMEOUT', `${this.label} (pid ${this.pid}) did not print ${re} within ${timeoutMs} ms`, {
            argv: this.argv,
            stderr: this.output().slice(-4000),
          }),
        );
      }, timeoutMs);
      const listener = (): void => {
        check();
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
      check();
    });
  }

  /** Sends a signal to this pid (no-op once exited). */
  signal(sig: NodeJS.Signals): void {
    if (this.exit || this.reaped) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once exited. */
  async stop(graceMs = 1500): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signal('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** SIGKILL by pid, synchronously (for exit paths). */
  killSync(): void {
    this.signal('SIGKILL');
  }
}

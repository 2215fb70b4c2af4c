/**
 * The Lab: owner of every namespace, process and clean-up step of one test run (or demo run).
 * Nothing it creates outlives it: `close()` (or `closeSync()`, which also runs by itself on process
 * exit, SIGINT, SIGTERM and SIGHUP) stops the processes it spawned, kills by pid whatever else
 * still runs in its namespaces, runs the registered clean-ups, deletes the namespaces and the work
 * directory. Both are idempotent.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from './errors.js';
import { exec, execSync, run, type ExecOptions, type ExecResult, type NsRef } from './exec.js';
import { onProcessExit } from './exit-guard.js';
import { NETNS_PREFIX, netnsName, newRunTag, wgIfName } from './names.js';
import { LabProcess, type SpawnOptions } from './process.js';
import { listNetns, netnsPids, parsePids, pidAlive, sweepLeftovers } from './sweep.js';

export interface LabOptions {
  /** Remove leftovers of crashed earlier runs of this harness first (default true). */
  sweep?: boolean;
  /** Keep the work directory (process logs) after close. Default: env MESHD_LAB_KEEP=1. */
  keepWorkDir?: boolean;
  /** Grace period for SIGTERM before SIGKILL when closing (default 1000 ms). */
  stopGraceMs?: number;
}

/** A network namespace owned by a lab. */
export class Netns {
  constructor(
    readonly lab: Lab,
    /** The namespace's name (`ip netns`), at most 15 characters. */
    readonly name: string,
    /** What it is for, e.g. 'relay' or 'router-a'. */
    readonly role: string,
  ) {}

  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.lab.exec(this, argv, opts);
  }
  /** Runs argv here; non-zero exit is a LabError; resolves with stdout. */
  run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    return this.lab.run(this, argv, opts);
  }
  /** `ip -n NAME …` (no mount-namespace setup: faster than exec(['ip', …])). */
  ip(...args: string[]): Promise<string> {
    return run(null, ['ip', '-n', this.name, ...args]);
  }
  /** iptables inside this namespace. */
  iptables(...args: string[]): Promise<string> {
    return this.run(['iptables', '-w', ...args]);
  }
  /** Sets a sysctl of this namespace, e.g. sysctl('net.ipv4.ip_forward', '1'). */
  async sysctl(key: string, value: string): Promise<void> {
    if (!/^[a-z0-9_.-]+$/i.test(key)) throw new LabError('E_LAB', `bad sysctl key ${key}`);
    const path = `/proc/sys/${key.replace(/\./g, '/')}`;
    await this.run(['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', value, path]);
  }
  /** Spawns a tracked long-running process here. */
  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess {
    return this.lab.spawn(this, argv, opts);
  }
  /** Spawns `node script …args` here, with this process's node binary. */
  node(script: string, args: readonly string[] = [], opts?: SpawnOptions): LabProcess {
    return this.lab.spawn(this, [process.execPath, script, ...args], { label: 'node', ...opts });
  }
}

type LabState = 'open' | 'closing' | 'closed';

export class Lab {
  /** pid36-tag3; part of every name this lab creates. */
  readonly runTag: string;
  /** Directory for logs, keys and pid files of this run (removed on close unless kept). */
  readonly workDir: string;

  private state: LabState = 'open';
  private readonly namespaces: Netns[] = [];
  private readonly processes = new Set<LabProcess>();
  private readonly cleanups: (() => void)[] = [];
  private nsSeq = 0;
  private wgSeq = 0;
  private logSeq = 0;
  private readonly keepWorkDir: boolean;
  private readonly stopGraceMs: number;
  private readonly unguard: () => void;
  private closing: Promise<void> | undefined;

  private constructor(runTag: string, workDir: string, opts: LabOptions) {
    this.runTag = runTag;
    this.workDir = workDir;
    this.keepWorkDir = opts.keepWorkDir ?? process.env.MESHD_LAB_KEEP === '1';
    this.stopGraceMs = opts.stopGraceMs ?? 1000;
    this.unguard = onProcessExit(() => this.closeSync());
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    if (opts.sweep !== false) await sweepLeftovers();
    const existing = await listNetns();
    let tag = newRunTag();
    while (existing.some((n) => n.startsWith(NETNS_PREFIX + tag))) tag = newRunTag();
    const workDir = join(tmpdir(), `${NETNS_PREFIX}${tag}`);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    return new Lab(tag, workDir, opts);
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new LabError('E_LAB', `lab ${this.runTag} is closed`);
  }

  /** Every namespace created so far, oldest first. */
  get netns(): readonly Netns[] {
    return this.namespaces;
  }

  /** Processes spawned through this lab that are still running. */
  get running(): readonly LabProcess[] {
    return [...this.processes].filter((p) => p.running);
  }

  /** Creates a namespace with its loopback up. */
  async addNamespace(role: string): Promise<Netns> {
    this.assertOpen();
    const ns = new Netns(this, netnsName(this.runTag, this.nsSeq++, role), role);
    this.namespaces.push(ns); // before creating, so a half-made one is deleted too
    await run(null, ['ip', 'netns', 'add', ns.name]);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** Links two namespaces with a veth pair (aIf in a, bIf in b), both ends up. */
  async veth(a: Netns, aIf: string, b: Netns, bIf: string, opts: { mtu?: number } = {}): Promise<void> {
    this.assertOpen();
    const mtu = opts.mtu === undefined ? [] : ['mtu', String(opts.mtu)];
    await a.ip('link', 'add', aIf, ...mtu, 'type', 'veth', 'peer', 'name', bIf, ...mtu, 'netns', b.name);
    await a.ip('link', 'set', aIf, 'up');
    await b.ip('link', 'set', bIf, 'up');
  }

  /** A WireGuard interface name unique across runs (their UAPI sockets share one directory). */
  newWgIfName(): string {
    return wgIfName(this.runTag, this.wgSeq++);
  }

  /** A fresh path in the work directory, e.g. for a log file. */
  file(name: string): string {
    return join(this.workDir, `${this.logSeq++}-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  }

  exec(ns: NsRef, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return exec(ns, argv, opts);
  }

  run(ns: NsRef, argv: readonly string[], opts?: ExecOptions): Promise<string> {
    return run(ns, argv, opts);
  }

  /** Spawns a process in `ns` that the lab stops on close; its output also goes to a log file. */
  spawn(ns: NsRef, argv: readonly string[], opts: SpawnOptions = {}): LabProcess {
    this.assertOpen();
    const label = opts.label ?? (argv[0] ?? 'proc').split('/').pop()!;
    const p = new LabProcess(ns, argv, { logFile: this.file(`${label}.log`), ...opts, label });
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
    return p;
  }

  /** Registers a synchronous clean-up step, run on close after processes are gone. */
  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Stops everything and deletes every namespace. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeAsync();
    return this.closing;
  }

  private async closeAsync(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    await Promise.all([...this.processes].map((p) => p.stop(this.stopGraceMs)));
    // Whatever else runs in our namespaces (daemons that forked, commands that timed out).
    for (let round = 0; round < 2; round++) {
      const stray = (await Promise.all(this.namespaces.map((ns) => netnsPids(ns.name)))).flat();
      if (stray.length === 0) break;
      for (const pid of stray) signalPid(pid, round === 0 ? 'SIGTERM' : 'SIGKILL');
      await waitGone(stray, this.stopGraceMs);
    }
    this.finish();
  }

  /** close() for exit paths: SIGKILLs by pid and deletes synchronously. Idempotent. */
  closeSync(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    for (const p of this.processes) p.killSync();
    for (const ns of this.namespaces) {
      const r = execSync(null, ['ip', 'netns', 'pids', ns.name], { timeoutMs: 5000 });
      for (const pid of parsePids(r.stdout)) signalPid(pid, 'SIGKILL');
    }
    this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return; // closeSync (a signal) overtook an async close
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch {
        /* keep going */
      }
    }
    for (const ns of [...this.namespaces].reverse()) {
      execSync(null, ['ip', 'netns', 'del', ns.name], { timeoutMs: 5000 });
    }
    if (!this.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true });
    this.state = 'closed';
    this.unguard();
  }
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

async function waitGone(pids: number[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (pids.some(pidAlive) && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
}

/**
 * Tells the agent when the host's interface addresses change (DHCP renewal, roaming, `ip addr`).
 *
 * Event-driven where it can be: `ip -o monitor link address` (netlink) prints a line per link or
 * address change and nothing otherwise, so an idle daemon wakes for nothing — the 1 s poll of
 * `os.networkInterfaces()` it replaces woke every daemon every second. A burst of events (an
 * address removed, another added, the link flapping) is read as one comparison of the addresses
 * with the last seen, LINK_SETTLE_MS after its last event. The monitor runs under
 * `setpriv --pdeathsig KILL`: it dies with the daemon, however the daemon ends. Without `ip` or
 * `setpriv`, or when the monitor exits, the watcher polls every LINK_POLL_MS as before; with it, a
 * comparison every LINK_BACKSTOP_MS still catches what a monitor could have missed.
 */
import { spawn } from 'node:child_process';
import { systemClock, type Clock, type Ticker } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';

/** Poll period without a monitor. */
export const LINK_POLL_MS = 1000;
/** Quiet time after a monitor event before the addresses are compared. */
export const LINK_SETTLE_MS = 200;
/** With a monitor, compare anyway this often (and once LINK_POLL_MS after it starts). */
export const LINK_BACKSTOP_MS = 60_000;

/** A source of "something about links or addresses changed" events. */
export interface LinkMonitor {
  /** Called for each event until stop(). */
  onEvent(cb: () => void): void;
  /** Called once if the monitor fails to start or ends before stop(). */
  onExit(cb: (why: string) => void): void;
  stop(): void;
}

export interface LinkWatchOptions {
  /** The addresses to compare ("eth0/192.0.2.1"). */
  addresses: () => Set<string>;
  /** The addresses changed: the new set, and those that went away. */
  onChange: (addresses: Set<string>, lost: string[]) => void;
  /** The event source (default: `ip monitor`); null: poll. */
  monitor?: () => LinkMonitor | null;
  clock?: Clock;
  log?: Logger;
}

export class LinkWatcher {
  private last: Set<string>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private monitor: LinkMonitor | null = null;
  private poll: Ticker | null = null;
  private settle: Ticker | null = null;
  private first: Ticker | null = null;
  private stopped = false;
  /** Comparisons made (for tests and status). */
  checks = 0;

  constructor(private readonly opts: LinkWatchOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.last = opts.addresses();
    let m: LinkMonitor | null = null;
    try {
      m = (opts.monitor ?? spawnIpMonitor)();
    } catch (e) {
      this.log.warn('link.monitor-failed', { error: (e as Error).message, hint: 'interface changes are polled every second instead' });
    }
    if (m === null) {
      this.startPolling(LINK_POLL_MS);
      return;
    }
    this.monitor = m;
    m.onEvent(() => this.onEvent());
    m.onExit((why) => {
      if (this.stopped || this.monitor !== m) return;
      this.monitor = null;
      this.log.warn('link.monitor-exited', { why, hint: 'interface changes are polled every second instead' });
      this.poll?.cancel();
      this.startPolling(LINK_POLL_MS);
    });
    // changes between reading the addresses above and the monitor listening are not lost
    this.first = this.clock.after(LINK_POLL_MS, () => this.check(), { unref: true });
    this.startPolling(LINK_BACKSTOP_MS);
  }

  /** Is an event source running (false: polling every second)? */
  get eventDriven(): boolean {
    return this.monitor !== null;
  }

  stop(): void {
    this.stopped = true;
    this.poll?.cancel();
    this.settle?.cancel();
    this.first?.cancel();
    const m = this.monitor;
    this.monitor = null;
    m?.stop();
  }

  private startPolling(ms: number): void {
    this.poll = this.clock.every(ms, () => this.check(), { unref: true });
  }

  private onEvent(): void {
    if (this.stopped) return;
    this.settle?.cancel();
    this.settle = this.clock.after(LINK_SETTLE_MS, () => this.check(), { unref: true });
  }

  /** Compare the addresses with the last seen; tell the agent when they differ. */
  check(): void {
    if (this.stopped) return;
    this.checks++;
    const now = this.opts.addresses();
    const last = this.last;
    if (now.size === last.size && [...now].every((a) => last.has(a))) return;
    this.last = now;
    this.opts.onChange(now, [...last].filter((a) => !now.has(a)));
  }
}

/**
 * `ip -o monitor link address` in this process's network namespace, killed by the kernel when
 * this process dies (setpriv --pdeathsig). Each output line is an event.
 */
export function spawnIpMonitor(): LinkMonitor {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'ip', '-o', 'monitor', 'link', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let onEvent: () => void = () => {};
  let onExit: (why: string) => void = () => {};
  let exited = false;
  const exit = (why: string): void => {
    if (exited) return;
    exited = true;
    onExit(why);
  };
  child.stdout.on('data', () => onEvent());
  child.once('error', (e) => exit(e.message));
  child.once('exit', (code, signal) => exit(`ip monitor exited (${signal ?? code})`));
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  child.unref();
  return {
    onEvent: (cb) => void (onEvent = cb),
    onExit: (cb) => void (onExit = cb),
    stop: () => {
      exited = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

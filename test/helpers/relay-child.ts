/**
 * `meshd relay serve` in its own process (the lab's relay CLI fixture), so that its memory and
 * event loop are measured apart from the test's clients. Status lines come every second.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './derp-raw.js';

const RELAY_CLI = fileURLToPath(new URL('../fixtures/relay-cli.js', import.meta.url));

/** `meshd relay serve` in its own process, so that its memory can be measured alone. */
export async function childRelay(args: string[]) {
  const home = mkdtempSync(join(tmpdir(), 'meshd-relay-'));
  // A small young generation: RSS then follows live memory, not the nursery's size.
  const proc = spawn(process.execPath, ['--max-semi-space-size=1', RELAY_CLI, 'relay', 'serve', '--listen', '127.0.0.1:0', '--no-stun', '--json', '--stats-interval', '1', ...args], {
    env: { ...process.env, MESHD_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let last: Record<string, number> = {};
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    const lines = err.split('\n');
    err = lines.pop() ?? '';
    for (const l of lines) {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (o.event === 'relay-stats') last = o as Record<string, number>;
      } catch {
        // a log line
      }
    }
  });
  const exited = once(proc, 'exit');
  await waitFor(() => /\n}\s*$/.test(out), 'relay listening', 10_000);
  const listening = JSON.parse(out) as { httpPort: number; url: string };
  const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1]) * 1024;
  return {
    port: listening.httpPort,
    url: listening.url,
    rss,
    /** The counters of the last status line. */
    latest: (): Record<string, number> => last,
    /** The counters of the next status line (at most a second old). */
    async stats(): Promise<Record<string, number>> {
      last = {};
      await waitFor(() => last.accepts !== undefined, 'a status line', 3000);
      return last;
    },
    async stop(): Promise<void> {
      proc.kill('SIGTERM');
      await exited;
      rmSync(home, { recursive: true, force: true });
    },
  };
}


/**
 * `meshd logs [-f] [--since 10m] [-n N] [--level warn] [--json]`: the daemon's log
 * (<home>/meshd.log) in a human format — or its entries as JSON lines — optionally following
 * what is appended (like `tail -f`, surviving truncation and rotation of the file).
 */
import { daemonDir } from './network-target.js';
import { closeSync, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import type { Command } from 'commander';
import { MeshdError, UsageError } from '../../errors.js';
import { logPath } from '../../daemon/background.js';
import { action, subcommand, type Io } from '../program.js';
import { formatLogEntry, LineSplitter, parseLogLine, parseSince, type LogEntry, type LogLevel } from './log-lines.js';

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const FOLLOW_POLL_MS = 250;

/** Bytes of `path` from `offset` to its end (at most `max`). */
function readFrom(path: string, offset: number, max = 64 << 20): { text: string; end: number } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.max(0, Math.min(size - offset, max));
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return { text: buf.subarray(0, got).toString('utf8'), end: offset + got };
  } finally {
    closeSync(fd);
  }
}

export function registerLogs(program: Command, io: Io): void {
  const cmd = subcommand(program, 'logs', "the daemon's log, for people (or as JSON lines with --json)")
    .option('-f, --follow', 'keep printing what is appended, until interrupted')
    .option('--since <when>', 'only entries newer than this: 30s, 10m, 2h, 1d or an ISO date')
    .option('-n, --lines <n>', 'only the last N entries (before following)')
    .option('--level <level>', 'only entries at this level or above: debug, info, warn, error')
    .option('--utc', 'print the timestamps as written (UTC) instead of local time');
  action(cmd, io, async (ctx) => {
    const o = cmd.opts<{ follow?: boolean; since?: string; lines?: string; level?: string; utc?: boolean }>();
    const since = o.since === undefined ? null : parseSince(o.since, Date.now());
    if (o.since !== undefined && since === null) throw new UsageError(`--since "${o.since}" is neither a duration (30s, 10m, 2h, 1d) nor a date`);
    const lines = o.lines === undefined ? null : Number(o.lines);
    if (lines !== null && !(Number.isInteger(lines) && lines >= 0)) throw new UsageError('--lines must be a whole number');
    if (o.level !== undefined && !(o.level in RANK)) throw new UsageError('--level must be debug, info, warn or error');
    const minRank = RANK[(o.level ?? 'debug') as LogLevel];
    const path = logPath(daemonDir(ctx));
    let st: Stats;
    try {
      st = statSync(path);
    } catch {
      throw new MeshdError('E_STATE_IO', `no log at ${path}`, { hint: 'the daemon writes it once started: `meshd up`' });
    }
    let skipped = 0;
    const show = (e: LogEntry) => {
      if (RANK[e.level] < minRank || (since !== null && e.time < since)) return;
      io.stdout(ctx.json ? JSON.stringify({ ts: e.ts, level: e.level, event: e.event, ...e.fields }) : formatLogEntry(e, { utc: o.utc === true }));
    };
    const take = (raw: string[]): LogEntry[] => {
      const out: LogEntry[] = [];
      for (const l of raw) {
        if (l.trim() === '') continue;
        const e = parseLogLine(l);
        if (e) out.push(e);
        else skipped++;
      }
      return out;
    };
    const splitter = new LineSplitter();
    const first = readFrom(path, 0);
    let entries = take(splitter.push(first.text)).filter((e) => RANK[e.level] >= minRank && (since === null || e.time >= since));
    if (lines !== null) entries = lines === 0 ? [] : entries.slice(-lines);
    for (const e of entries) show(e);
    const reportSkipped = () => {
      if (skipped > 0) io.stderr(`meshd: ${skipped} line${skipped === 1 ? '' : 's'} of ${path} ${skipped === 1 ? 'is' : 'are'} not log entries (skipped)`);
    };
    if (!o.follow) return reportSkipped();

    let offset = first.end;
    let ino = st.ino;
    await new Promise<void>((resolve) => {
      const check = () => {
        let now: Stats;
        try {
          now = statSync(path);
        } catch {
          return; // rotated away: wait for the new file
        }
        if (now.ino !== ino || now.size < offset) {
          offset = 0; // a new or truncated file: from its start
          ino = now.ino;
        }
        if (now.size === offset) return;
        const r = readFrom(path, offset);
        offset = r.end;
        for (const e of take(splitter.push(r.text))) show(e);
      };
      // compared with what was read so far (not with a watcher's first look, which may come
      // after a write and then never report it)
      const timer = setInterval(check, FOLLOW_POLL_MS);
      ctx.progress(`following ${path} (Ctrl-C stops)`);
      const stop = () => {
        clearInterval(timer);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    reportSkipped();
  });
}

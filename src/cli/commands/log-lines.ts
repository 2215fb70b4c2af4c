/**
 * The daemon’s log file as src/util/log.ts writes it: one JSON object a line,
 * `{"ts": ISO-8601, "level": "debug|info|warn|error", "event": NAME, ...fields}`. Parsed here
 * on its own, so that `meshd logs` reads the file and does not depend on how it is written.
 * A line that is not such an object is returned as null (the caller counts it).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEntry {
  /** Milliseconds since the epoch. */
  time: number;
  ts: string;
  level: LogLevel;
  event: string;
  fields: Record<string, unknown>;
}

const LEVELS: ReadonlySet<string> = new Set(['debug', 'info', 'warn', 'error']);
/** Longest line considered (a longer one is not a log entry of ours). */
const MAX_LINE = 1 << 20;

export function parseLogLine(line: string): LogEntry | null {
  if (line.length === 0 || line.length > MAX_LINE || line[0] !== '{') return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const { ts, level, event, ...fields } = v as Record<string, unknown>;
  if (typeof ts !== 'string' || typeof level !== 'string' || typeof event !== 'string' || !LEVELS.has(level) || event.length === 0) return null;
  const time = Date.parse(ts);
  if (!Number.isFinite(time)) return null;
  return { time, ts, level: level as LogLevel, event, fields };
}

/** "10m", "2h", "30s", "1d", "500ms" → milliseconds; an ISO date → now minus that; null if neither. */
export function parseSince(s: string, now: number): number | null {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(s.trim());
  if (m) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return now - Number(m[1]) * unit;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    const t = Date.parse(s);
    return Number.isFinite(t) ? t : null;
  }
  return null;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  return JSON.stringify(v) ?? String(v);
}

/** One entry for people: local date and time, level, event, then key=value fields. */
export function formatLogEntry(e: LogEntry, opts: { utc?: boolean } = {}): string {
  const d = new Date(e.time);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = opts.utc
    ? e.ts
    : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const kv = Object.entries(e.fields)
    .filter(([k]) => k !== 'stack')
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(' ');
  return `${stamp} ${e.level.toUpperCase().padEnd(5)} ${e.event}${kv ? ' ' + kv : ''}`;
}

/** Splits appended text into complete lines, keeping a trailing partial line for the next chunk. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    if (this.rest.length > MAX_LINE) this.rest = '';
    return lines;
  }
}

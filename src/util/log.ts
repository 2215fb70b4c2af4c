/**
 * The one logger: levelled (debug < info < warn < error), per component (`log.child('magicsock')`),
 * structured (an event name and fields), written to sinks that never block the caller.
 *
 * - `FileSink` appends one JSON object per line — {"ts","level","event","component",...fields} —
 *   asynchronously: lines are buffered and written in the background, one write in flight at a
 *   time, so the event loop that carries packets never waits for the disk. The buffer is bounded
 *   (lines past it are dropped and counted, and a `log.dropped` line says how many); `flush()`
 *   waits for everything buffered, and whatever is still buffered when the process exits is
 *   written synchronously from the 'exit' handler.
 * - `StderrSink` prints a readable line ("12:00:01.234 info  magicsock path-lost peer=…").
 * - Every record, whatever the logger's level, is also published on the `diagnostics_channel`
 *   named `LOG_CHANNEL` while someone subscribes (tests and tools can watch engine events, debug
 *   ones included, without parsing files or turning debug logging on).
 */
import { channel } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface LogRecord {
  /** ISO 8601 wall time. */
  ts: string;
  level: LogLevel;
  /** The component that logged it ('' for the root logger). */
  component: string;
  event: string;
  fields: LogFields;
}

export interface LogSink {
  write(rec: LogRecord): void;
  /** Resolves when everything written so far is out. */
  flush?(): Promise<void>;
}

export interface Logger {
  readonly component: string;
  log(level: LogLevel, event: string, fields?: LogFields): void;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Would a record at `level` be written? (Skip building expensive fields when not.) */
  enabled(level: LogLevel): boolean;
  /** The same sinks and level, records tagged with `component` (nested: "parent.child"). */
  child(component: string): Logger;
  /** Resolves when every sink has written what it was given. */
  flush(): Promise<void>;
}

/** diagnostics_channel name on which every LogRecord is published. */
export const LOG_CHANNEL = 'meshd:log';
const logChannel = channel(LOG_CHANNEL);

export interface LoggerOptions {
  /** Lowest level written (default 'info'). */
  level?: LogLevel;
  sinks?: readonly LogSink[];
  component?: string;
  /** Wall time in ms (default Date.now); tests pin it. */
  wallMs?: () => number;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const sinks = opts.sinks ?? [];
  const wallMs = opts.wallMs ?? Date.now;
  const make = (component: string): Logger => {
    const log = (level: LogLevel, event: string, fields: LogFields = {}): void => {
      const write = RANK[level] >= min;
      const publish = logChannel.hasSubscribers;
      if (!write && !publish) return;
      const rec: LogRecord = { ts: new Date(wallMs()).toISOString(), level, component, event, fields };
      if (write) {
        for (const s of sinks) {
          try {
            s.write(rec);
          } catch {
            // logging must never take the process down
          }
        }
      }
      if (publish) logChannel.publish(rec);
    };
    return {
      component,
      log,
      debug: (e, f) => log('debug', e, f),
      info: (e, f) => log('info', e, f),
      warn: (e, f) => log('warn', e, f),
      error: (e, f) => log('error', e, f),
      enabled: (level) => RANK[level] >= min,
      child: (name) => make(component === '' ? name : `${component}.${name}`),
      flush: async () => {
        await Promise.all(sinks.map((s) => s.flush?.()));
      },
    };
  };
  return make(opts.component ?? '');
}

const nothing = (): void => {};

/** Writes nothing and publishes nothing. */
export const silentLogger: Logger = {
  component: '',
  log: nothing,
  debug: nothing,
  info: nothing,
  warn: nothing,
  error: nothing,
  enabled: () => false,
  child: () => silentLogger,
  flush: async () => {},
};

/** The on-disk line: {"ts","level","event","component"?,...fields} (what log readers parse). */
export function formatJsonLine(rec: LogRecord): string {
  const head: LogFields = { ts: rec.ts, level: rec.level, event: rec.event };
  if (rec.component !== '') head.component = rec.component;
  return JSON.stringify({ ...head, ...rec.fields }) + '\n';
}

/** The readable line: "HH:MM:SS.mmm level component event k=v …". */
export function formatTextLine(rec: LogRecord): string {
  const kv = Object.entries(rec.fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const comp = rec.component === '' ? '' : `${rec.component} `;
  return `${rec.ts.slice(11, 23)} ${rec.level.padEnd(5)} ${comp}${rec.event}${kv ? ' ' + kv : ''}\n`;
}

/** Readable lines through `write` (default: process.stderr). */
export class TextSink implements LogSink {
  constructor(private readonly out: (line: string) => void = (l) => void process.stderr.write(l)) {}

  write(rec: LogRecord): void {
    this.out(formatTextLine(rec));
  }
}

/** JSON lines (the on-disk format) through `write`, e.g. a command's stderr with --json. */
export class JsonLinesSink implements LogSink {
  constructor(private readonly out: (line: string) => void = (l) => void process.stderr.write(l)) {}

  write(rec: LogRecord): void {
    this.out(formatJsonLine(rec));
  }
}

export interface FileSinkOptions {
  /** Most bytes buffered while writes are in flight (default 4 MiB); lines past it are dropped and counted. */
  maxBufferBytes?: number;
  /** File mode when created (default 0o600). */
  mode?: number;
}

/** JSON lines appended to a file asynchronously (see the module comment). */
export class FileSink implements LogSink {
  private buf: string[] = [];
  private bufBytes = 0;
  /** The chunk being written now (rewritten synchronously if the process exits under it). */
  private inflight: string | null = null;
  private writing: Promise<void> | null = null;
  private handle: Promise<FileHandle | null> | null = null;
  private readonly maxBytes: number;
  private readonly mode: number;
  /** Lines dropped because the buffer was full, not yet reported in the file. */
  private droppedPending = 0;
  /** Lines dropped in all. */
  dropped = 0;
  private readonly onExit = (): void => this.flushSync();

  constructor(
    readonly path: string,
    opts: FileSinkOptions = {},
  ) {
    this.maxBytes = opts.maxBufferBytes ?? 4 * 1024 * 1024;
    this.mode = opts.mode ?? 0o600;
    process.on('exit', this.onExit);
  }

  write(rec: LogRecord): void {
    const line = formatJsonLine(rec);
    if (this.bufBytes + line.length > this.maxBytes) {
      this.dropped++;
      this.droppedPending++;
      return;
    }
    this.push(line);
  }

  private push(line: string): void {
    this.buf.push(line);
    this.bufBytes += line.length;
    this.writing ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      this.handle ??= open(this.path, 'a', this.mode).catch(() => null);
      const fh = await this.handle;
      while (this.buf.length > 0) {
        if (this.droppedPending > 0) {
          this.buf.push(formatJsonLine({ ts: new Date().toISOString(), level: 'warn', component: 'log', event: 'log.dropped', fields: { lines: this.droppedPending } }));
          this.droppedPending = 0;
        }
        const chunk = this.buf.join('');
        this.buf = [];
        this.bufBytes = 0;
        if (fh === null) continue; // the file cannot be opened: lines go nowhere, the daemon goes on
        this.inflight = chunk;
        try {
          await fh.appendFile(chunk);
        } catch {
          // a full disk must not take the daemon down
        } finally {
          this.inflight = null;
        }
      }
    } finally {
      this.writing = null;
    }
  }

  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  /**
   * Write what is buffered now, synchronously (process exit). A chunk whose asynchronous write
   * had not completed is written again: a line twice rather than a last line lost.
   */
  flushSync(): void {
    if (this.buf.length === 0 && this.inflight === null) return;
    const chunk = (this.inflight ?? '') + this.buf.join('');
    this.inflight = null;
    this.buf = [];
    this.bufBytes = 0;
    try {
      appendFileSync(this.path, chunk, { mode: this.mode });
    } catch {
      // nothing left to tell
    }
  }

  /** Flush, close the file and stop listening for process exit. */
  async close(): Promise<void> {
    await this.flush();
    process.off('exit', this.onExit);
    const fh = await this.handle;
    this.handle = null;
    await fh?.close().catch(() => undefined);
  }
}

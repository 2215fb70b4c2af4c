/**
 * Structured logs: one JSON object per line in <home>/meshd.log, and a readable line on
 * stderr when running in the foreground.
 */
import { appendFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  debug(event: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  file?: string;
  stderr?: boolean;
  debug?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const write = (level: LogLevel, event: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !opts.debug) return;
    const ts = new Date().toISOString();
    if (opts.file) {
      try {
        appendFileSync(opts.file, JSON.stringify({ ts, level, event, ...fields }) + '\n', { mode: 0o600 });
      } catch {
        // logging must never take the daemon down
      }
    }
    if (opts.stderr) {
      const kv = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${ts.slice(11, 23)} ${level.padEnd(5)} ${event}${kv ? ' ' + kv : ''}\n`);
    }
  };
  return {
    log: write,
    info: (e, f) => write('info', e, f),
    warn: (e, f) => write('warn', e, f),
    error: (e, f) => write('error', e, f),
    debug: (e, f) => write('debug', e, f),
  };
}

export const silentLogger: Logger = createLogger({});

/**
 * The daemon's logger: src/util/log.ts writing JSON lines to <home>/meshd.log (asynchronously)
 * and, in the foreground, readable lines on stderr. MESHD_DEBUG=1 turns on debug records.
 */
import { createLogger, FileSink, TextSink, type LogSink, type Logger } from '../util/log.js';

export { silentLogger, type LogLevel, type Logger } from '../util/log.js';

export interface DaemonLoggerOptions {
  file?: string;
  stderr?: boolean;
  debug?: boolean;
}

export interface DaemonLogger extends Logger {
  /** Flush and close the log file. */
  close(): Promise<void>;
}

export function createDaemonLogger(opts: DaemonLoggerOptions): DaemonLogger {
  const file = opts.file !== undefined ? new FileSink(opts.file) : null;
  const sinks: LogSink[] = [];
  if (file !== null) sinks.push(file);
  if (opts.stderr) sinks.push(new TextSink());
  const log = createLogger({ level: opts.debug ? 'debug' : 'info', sinks });
  return Object.assign(log, { close: async () => void (await file?.close()) });
}

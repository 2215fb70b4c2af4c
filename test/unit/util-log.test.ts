/**
 * The logger: levels and components, the on-disk JSON line that log readers parse, writes that
 * never run on the caller's stack (asynchronous, bounded, flushed), diagnostics_channel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, FileSink, LOG_CHANNEL, formatTextLine, type LogRecord, type LogSink } from '../../src/util/log.js';

function memorySink(): LogSink & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  return { records, write: (r) => void records.push(r) };
}

function tempDir(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('logger', () => {
  test('levels below the minimum are not written; children tag their component', () => {
    const sink = memorySink();
    const log = createLogger({ level: 'info', sinks: [sink], wallMs: () => Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
    const ms = log.child('dataplane').child('magicsock');
    log.debug('quiet');
    ms.info('path-lost', { peer: 'k' });
    log.warn('route-failed', { route: '10.0.0.0/8' });
    assert.deepEqual(
      sink.records.map((r) => [r.level, r.component, r.event]),
      [
        ['info', 'dataplane.magicsock', 'path-lost'],
        ['warn', '', 'route-failed'],
      ],
    );
    assert.equal(log.enabled('debug'), false);
    assert.equal(log.enabled('error'), true);
    assert.equal(formatTextLine(sink.records[0]!), '03:04:05.678 info  dataplane.magicsock path-lost peer=k\n');
  });

  test('file lines are written after the call returns, as the JSON readers expect, and flushed', async (t) => {
    const file = join(tempDir(t), 'meshd.log');
    const sink = new FileSink(file);
    t.after(() => sink.close());
    const log = createLogger({ sinks: [sink] });
    log.info('daemon.stopped', { reason: 'test' });
    // nothing was written on the caller's stack
    assert.equal(existsSync(file) ? readFileSync(file, 'utf8') : '', '');
    log.child('dataplane').warn('route-failed', { route: '10.1.0.0/16' });
    await log.flush();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /"event":"daemon.stopped"/); // the form bench/scale.ts and the lab tests grep for
    const second = JSON.parse(lines[1]!) as Record<string, unknown>;
    assert.equal(second.level, 'warn');
    assert.equal(second.event, 'route-failed');
    assert.equal(second.component, 'dataplane');
    assert.equal(second.route, '10.1.0.0/16');
    assert.equal(typeof second.ts, 'string');
  });

  test('the buffer is bounded: lines past it are dropped, counted and reported', async (t) => {
    const file = join(tempDir(t), 'meshd.log');
    const sink = new FileSink(file, { maxBufferBytes: 1000 });
    t.after(() => sink.close());
    const log = createLogger({ sinks: [sink] });
    for (let i = 0; i < 200; i++) log.info('burst', { i, pad: 'x'.repeat(40) });
    assert.ok(sink.dropped > 150, `dropped ${sink.dropped}`);
    await log.flush();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.ok(lines.length < 50, `${lines.length} lines written`);
    const report = lines.map((l) => JSON.parse(l) as { event: string; lines?: number }).find((r) => r.event === 'log.dropped');
    assert.equal(report?.lines, sink.dropped);
  });

  test('a file that cannot be opened costs the caller nothing', async (t) => {
    const sink = new FileSink(join(tempDir(t), 'no-such-dir', 'meshd.log'));
    t.after(() => sink.close());
    const log = createLogger({ sinks: [sink] });
    log.error('still-running');
    await log.flush();
  });

  test('records are published on diagnostics_channel when someone listens, below the written level too', (t) => {
    const seen: LogRecord[] = [];
    const onMessage = (m: unknown): void => void seen.push(m as LogRecord);
    subscribe(LOG_CHANNEL, onMessage);
    t.after(() => unsubscribe(LOG_CHANNEL, onMessage));
    const sink = memorySink();
    createLogger({ level: 'info', sinks: [sink] }).child('engine').debug('handshake-complete', { peer: 'p' });
    assert.equal(sink.records.length, 0, 'a debug record was written at level info');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.component, 'engine');
    assert.equal(seen[0]!.event, 'handshake-complete');
  });
});

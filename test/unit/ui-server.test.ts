/**
 * The dashboard's listener without a mesh: one-time codes and sessions (UiAuth, with a pinned
 * clock), the Host/Origin checks, and the real HTTP server on loopback with a small backend —
 * 401 without a session, 403 for a foreign Host or Origin, the event stream sending a changed
 * view, actions reaching the backend only with a session — plus the recent-events logger.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { RecentEvents } from '../../src/daemon/recent-events.js';
import { cookieValue, refuseRequest, UI_CODE_TTL_MS, UI_SESSION_IDLE_MS, UiAuth } from '../../src/daemon/ui-auth.js';
import { startUiServer, type UiActionKind } from '../../src/daemon/ui-server.js';
import { createLogger, silentLogger, type LogRecord } from '../../src/util/log.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(port: number, o: { method?: string; path: string; headers?: Record<string, string>; body?: string; readMs?: number }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: { host: `127.0.0.1:${port}`, ...o.headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      res.on('end', done);
      if (o.readMs !== undefined) {
        setTimeout(() => {
          done();
          req.destroy();
        }, o.readMs);
      }
    });
    req.on('error', (e) => (o.readMs !== undefined ? undefined : reject(e)));
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

describe('UiAuth', () => {
  test('a code is spent once and expires; a session token is not a code', () => {
    let now = 1_000_000;
    const auth = new UiAuth(() => now);
    const code = auth.issueCode();
    assert.match(code, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(auth.check(code), false, 'the code itself opened a session');
    const token = auth.exchange(code);
    assert.ok(token !== null && token !== code);
    assert.equal(auth.exchange(code), null, 'a spent code was accepted');
    assert.equal(auth.check(token), true);
    assert.equal(auth.exchange('made-up'), null);
    assert.equal(auth.exchange(undefined), null);
    const late = auth.issueCode();
    now += UI_CODE_TTL_MS + 1;
    assert.equal(auth.exchange(late), null, 'an expired code was accepted');
    assert.equal(auth.check(token), true);
    now += UI_SESSION_IDLE_MS + 1;
    assert.equal(auth.check(token), false, 'an idle session lived on');
  });

  test('Host and Origin: loopback only, the dashboard origin for changes', () => {
    const port = 4242;
    assert.equal(refuseRequest(port, 'GET', { host: '127.0.0.1:4242' }), null);
    assert.equal(refuseRequest(port, 'GET', { host: 'localhost:4242' }), null);
    assert.match(refuseRequest(port, 'GET', { host: 'evil.example:4242' }) ?? '', /Host/);
    assert.match(refuseRequest(port, 'GET', { host: '127.0.0.1:4243' }) ?? '', /Host/);
    assert.match(refuseRequest(port, 'GET', { host: undefined }) ?? '', /Host/);
    assert.match(refuseRequest(port, 'POST', { host: '127.0.0.1:4242' }) ?? '', /Origin/, 'a POST without Origin');
    assert.match(refuseRequest(port, 'POST', { host: '127.0.0.1:4242', origin: 'http://evil.example' }) ?? '', /Origin/);
    assert.match(refuseRequest(port, 'GET', { host: '127.0.0.1:4242', origin: 'null' }) ?? '', /Origin/);
    assert.equal(refuseRequest(port, 'POST', { host: '127.0.0.1:4242', origin: 'http://127.0.0.1:4242', 'sec-fetch-site': 'same-origin' }), null);
    assert.match(refuseRequest(port, 'POST', { host: '127.0.0.1:4242', origin: 'http://127.0.0.1:4242', 'sec-fetch-site': 'cross-site' }) ?? '', /cross-site/);
    assert.equal(cookieValue('a=1; meshd_ui_4242=tok; b=2', 'meshd_ui_4242'), 'tok');
    assert.equal(cookieValue('meshd_ui_1=x', 'meshd_ui_4242'), undefined);
    assert.equal(cookieValue(undefined, 'x'), undefined);
  });
});

describe('the dashboard listener', () => {
  test('static page for all, API and events for a session only, actions with the right origin', async () => {
    let n = 0;
    const actions: [UiActionKind, string][] = [];
    const ui = await startUiServer({
      log: silentLogger,
      tickMs: 50,
      backend: {
        view: () => ({ n }),
        action: async (kind, id) => {
          actions.push([kind, id]);
          if (id === 'bad') throw new Error('no such peer');
          return { done: id };
        },
      },
    });
    try {
      const port = ui.port;
      const origin = `http://127.0.0.1:${port}`;
      const page = await http(port, { path: '/' });
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
      assert.equal((await http(port, { path: '/app.js' })).status, 200);
      assert.equal((await http(port, { path: '/nope' })).status, 404);
      assert.equal((await http(port, { path: '/', headers: { host: `rebound.example:${port}` } })).status, 403);
      assert.equal((await http(port, { path: '/api/state' })).status, 401);
      assert.equal((await http(port, { path: '/api/events' })).status, 401);

      const code = /#code=(.+)$/.exec(ui.link())![1]!;
      const json = { 'content-type': 'application/json' };
      assert.equal((await http(port, { method: 'POST', path: '/api/login', headers: json, body: JSON.stringify({ code }) })).status, 403, 'login without Origin');
      const login = await http(port, { method: 'POST', path: '/api/login', headers: { ...json, origin }, body: JSON.stringify({ code }) });
      assert.equal(login.status, 200);
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const state = await http(port, { path: '/api/state', headers: { cookie } });
      assert.equal(state.status, 200);
      assert.deepEqual(JSON.parse(state.body), { n: 0 });

      // the stream sends the view now, then again once it changed
      setTimeout(() => (n = 1), 100);
      const stream = await http(port, { path: '/api/events', headers: { cookie }, readMs: 500 });
      assert.equal(stream.status, 200);
      assert.match(String(stream.headers['content-type']), /text\/event-stream/);
      const views = [...stream.body.matchAll(/^event: state\ndata: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as { n: number });
      assert.deepEqual(views.map((v) => v.n), [0, 1], `stream: ${stream.body}`);

      // actions: session and origin needed; the backend's failure comes back as an error
      const act = (body: unknown, headers: Record<string, string>) => http(port, { method: 'POST', path: '/api/action', headers: { ...json, ...headers }, body: JSON.stringify(body) });
      assert.equal((await act({ kind: 'remove', id: 'did:x' }, { origin })).status, 401);
      assert.equal((await act({ kind: 'remove', id: 'did:x' }, { cookie, origin: 'http://evil.example' })).status, 403);
      assert.equal((await act({ kind: 'format-disk', id: 'did:x' }, { cookie, origin })).status, 400);
      assert.deepEqual(actions, []);
      const ok = await act({ kind: 'remove', id: 'did:x' }, { cookie, origin });
      assert.equal(ok.status, 200);
      assert.deepEqual(JSON.parse(ok.body), { ok: true, result: { done: 'did:x' } });
      const failed = await act({ kind: 'approve', id: 'bad' }, { cookie, origin });
      assert.equal(failed.status, 500);
      assert.match(failed.body, /no such peer/);
      assert.deepEqual(actions, [
        ['remove', 'did:x'],
        ['approve', 'bad'],
      ]);
    } finally {
      await ui.close();
    }
  });

  test('a missing page file is a clear error', async () => {
    await assert.rejects(startUiServer({ log: silentLogger, backend: { view: () => ({}), action: async () => ({}) }, assetsDir: '/nonexistent-meshd-ui' }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_UI');
      assert.match(e.message, /index\.html is missing/);
      return true;
    });
  });
});

describe('RecentEvents', () => {
  test('keeps the last info/warn/error records of a logger and its children, not debug', () => {
    const written: LogRecord[] = [];
    const base = createLogger({ level: 'debug', sinks: [{ write: (r) => void written.push(r) }] });
    const events = new RecentEvents(3);
    const log = events.tee(base);
    log.debug('noise');
    log.info('one', { a: 1 });
    log.child('engine').warn('two', { long: 'x'.repeat(1000) });
    log.error('three');
    log.info('four');
    assert.equal(written.length, 5, 'the base logger got every record');
    assert.deepEqual(
      events.last().map((e) => `${e.component}:${e.event}`),
      ['engine:two', ':three', ':four'],
    );
    assert.ok(String(events.last()[0]!.fields.long).length < 400, 'a long field was kept whole');
    assert.equal(events.count, 4);
  });
});

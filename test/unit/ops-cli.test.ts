/**
 * The operator's commands that need no running mesh: completion scripts (loaded by bash and
 * used to complete), the man page (rendered by groff), `version`, the systemd unit (checked by
 * `systemd-analyze verify`, installed, shown and removed in a directory of the test's own) and
 * `logs` over a log file written here (filters, JSON, malformed lines, following).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { MESHD_VERSION } from '../../src/version.js';
import { formatLogEntry, LineSplitter, parseLogLine, parseSince } from '../../src/cli/commands/log-lines.js';
import { serviceUnit } from '../../src/cli/commands/service-unit.js';
import { onPath } from '../../src/util/which.js';
import { MESHD_BIN, runMeshd, tempDir } from '../helpers/cli.js';
import { requirePrereqs } from '../helpers/prereqs.js';

/** Completions bash offers for the words typed so far (the last one is being completed). */
function bashComplete(file: string, words: string[]): string[] {
  const cword = words.length - 1;
  const arr = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -u; source "$1"; COMP_WORDS=(${arr}); COMP_CWORD=${cword}; _meshd; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', file], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `bash: ${r.stderr}`);
  assert.equal(r.stderr, '', 'bash printed errors while completing');
  return r.stdout.split('\n').filter((s) => s !== '');
}

describe('meshd completion and man', () => {
  test('the bash script parses, loads without errors and completes commands, subcommands and options', (t) => {
    const r = runMeshd(['completion', 'bash']);
    assert.equal(r.code, 0, r.stderr);
    const d = tempDir();
    t.after(d.cleanup);
    const file = join(d.path, 'meshd.bash');
    writeFileSync(file, r.stdout);
    const n = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
    assert.equal(n.status, 0, `bash -n: ${n.stderr}`);
    const load = spawnSync('bash', ['--norc', '--noprofile', '-c', 'set -u; source "$1"; complete -p meshd', 'bash', file], { encoding: 'utf8' });
    assert.equal(load.status, 0, load.stderr);
    assert.equal(load.stderr, '');
    assert.match(load.stdout, /complete -F _meshd meshd/);

    assert.deepEqual(bashComplete(file, ['meshd', 'p']).sort(), ['peer', 'ping']);
    assert.ok(bashComplete(file, ['meshd', 'service', '']).includes('install'));
    assert.ok(bashComplete(file, ['meshd', '--home', '/tmp', 'peer', 'a']).includes('add'));
    assert.deepEqual(bashComplete(file, ['meshd', 'ping', 'x', '--unt']), ['--until-direct']);
    assert.ok(bashComplete(file, ['meshd', 'up', '--fore']).includes('--foreground'));
    assert.deepEqual(bashComplete(file, ['meshd', 'zzz']), []);
  });

  test('zsh and fish scripts name every command; an unknown shell is a usage error', () => {
    const top = ['up', 'down', 'ping', 'doctor', 'logs', 'service', 'whois', 'status'];
    const zsh = runMeshd(['completion', 'zsh']);
    assert.equal(zsh.code, 0, zsh.stderr);
    assert.match(zsh.stdout, /^#compdef meshd/);
    const fish = runMeshd(['completion', 'fish']);
    assert.equal(fish.code, 0, fish.stderr);
    for (const c of top) {
      assert.ok(zsh.stdout.includes(`'${c}:`), `zsh lacks ${c}`);
      assert.ok(fish.stdout.includes(` -a ${c} `), `fish lacks ${c}`);
    }
    if (onPath('zsh')) assert.equal(spawnSync('zsh', ['-n'], { input: zsh.stdout }).status, 0);
    if (onPath('fish')) assert.equal(spawnSync('fish', ['-n'], { input: fish.stdout }).status, 0);
    const bad = runMeshd(['completion', 'powershell']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /no completion for "powershell"/);
  });

  test('the man page comes from the same definitions and renders with groff', () => {
    const r = runMeshd(['man']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\.TH MESHD 1 /);
    for (const c of ['ping', 'service install', 'peer add', 'doctor', 'logs']) assert.ok(r.stdout.includes(`.B meshd ${c.replace(/-/g, '\\-')}`), `man page lacks ${c}`);
    assert.ok(r.stdout.includes('\\-\\-until\\-direct'));
    assert.ok(!/^[.'](?!TH|SH|SS|TP|B |BR |I )/m.test(r.stdout.replace(/^\.B .*$/gm, '')), 'a text line starts with a control character');
    if (onPath('groff')) {
      const g = spawnSync('groff', ['-man', '-Tutf8'], { input: r.stdout, encoding: 'utf8' });
      assert.equal(g.status, 0, g.stderr);
      assert.doesNotMatch(g.stderr, /error/i);
      assert.match(g.stdout.replace(new RegExp('.' + String.fromCharCode(8), 'g'), ''), /--until-direct/);
    }
  });

  test('version: text and JSON', () => {
    const r = runMeshd(['version', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as { version: string; node: string; native: { loaded: boolean } };
    assert.equal(v.version, MESHD_VERSION);
    assert.equal(v.node, process.versions.node);
    assert.equal(typeof v.native.loaded, 'boolean');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(v.version, pkg.version);
    assert.match(runMeshd(['version']).stdout, new RegExp(`^meshd ${MESHD_VERSION.replace(/\./g, '\\.')}\n`));
  });
});

describe('meshd service', () => {
  const verify = (path: string) => spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 60_000 });

  test('the unit: up --foreground, restart on failure, CAP_NET_ADMIN only, hardening; systemd-analyze verify passes', (t) => {
    if (!requirePrereqs(t, ['systemd-analyze'])) return;
    const d = tempDir();
    t.after(d.cleanup);
    const r = runMeshd(['--home', '/var/lib/meshd', 'service', 'install', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const unit = r.stdout;
    // the daemon's node flags and malloc setting, as a background `meshd up` starts it (a small resident set)
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[/.]/g, '\\$&')} --max-semi-space-size=2 --v8-pool-size=2 \\S+/bin/meshd\\.js up --foreground --home /var/lib/meshd$`, 'm'));
    assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m);
    for (const line of ['Restart=on-failure', 'CapabilityBoundingSet=CAP_NET_ADMIN', 'AmbientCapabilities=CAP_NET_ADMIN', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'DeviceAllow=/dev/net/tun rw', 'StateDirectory=meshd', 'WantedBy=multi-user.target']) {
      assert.ok(unit.split('\n').includes(line), `unit lacks ${line}`);
    }
    assert.doesNotMatch(unit, /MemoryDenyWriteExecute=yes/); // V8's JIT would die
    const path = join(d.path, 'meshd.service');
    writeFileSync(path, unit);
    const v = verify(path);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', `systemd-analyze verify complained:\n${v.stderr}`);
  });

  test('systemd-analyze verify catches a unit that cannot run (the check can fail)', (t) => {
    if (!requirePrereqs(t, ['systemd-analyze'])) return;
    const d = tempDir();
    t.after(d.cleanup);
    const path = join(d.path, 'meshd-broken.service');
    writeFileSync(path, serviceUnit({ node: join(d.path, 'no-such-node'), meshd: MESHD_BIN, home: '/var/lib/meshd', user: 'dynamic', upArgs: [], bindLowPorts: false }));
    const v = verify(path);
    assert.ok(v.status !== 0 || v.stderr.trim() !== '', 'a unit whose ExecStart does not exist passed verify');
  });

  test('install, status and uninstall in a unit directory; extra `up` options after --; bad input refused', (t) => {
    if (!requirePrereqs(t, ['systemd-analyze'])) return;
    const d = tempDir();
    t.after(d.cleanup);
    const dir = join(d.path, 'units');
    const home = ['--home', join(d.path, 'home')];
    const inst = runMeshd([...home, 'service', 'install', '--unit-dir', dir, '--user', 'root', '--bind-low-ports', '--', '--relay', '0.0.0.0:443', '--metrics-listen', '127.0.0.1:9101']);
    assert.equal(inst.code, 0, inst.stderr);
    const path = join(dir, 'meshd.service');
    const unit = readFileSync(path, 'utf8');
    assert.match(unit, / up --foreground --home \S+ --relay 0\.0\.0\.0:443 --metrics-listen 127\.0\.0\.1:9101$/m);
    assert.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE$/m);
    assert.match(unit, /^User=root$/m);
    assert.match(unit, /^ReadWritePaths=/m);
    const v = verify(path);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', v.stderr);
    const st = runMeshd(['service', 'status', '--unit-dir', dir, '--json']);
    assert.equal(st.code, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { installed: boolean }).installed, true);
    const un = runMeshd(['service', 'uninstall', '--unit-dir', dir]);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(existsSync(path), false);
    assert.equal((JSON.parse(runMeshd(['service', 'status', '--unit-dir', dir, '--json']).stdout) as { installed: boolean }).installed, false);
    const bad = runMeshd(['service', 'install', '--dry-run', '--user', 'x y']);
    assert.equal(bad.code, 2);
    const home2 = runMeshd(['service', 'install', '--dry-run', '--', '--home', '/x']);
    assert.equal(home2.code, 2);
    assert.match(home2.stderr, /--home is set by the unit itself/);
  });
});

describe('meshd logs', () => {
  const entry = (ts: string, level: string, event: string, fields: Record<string, unknown> = {}) => JSON.stringify({ ts, level, event, ...fields });

  test('the parser takes the daemon\'s lines and nothing else, never throwing', () => {
    const e = parseLogLine(entry('2026-11-29T10:00:00.000Z', 'warn', 'map.peer-skipped', { peer: 'k', field: 'endpoint' }));
    assert.ok(e);
    assert.equal(e.level, 'warn');
    assert.deepEqual(e.fields, { peer: 'k', field: 'endpoint' });
    assert.match(formatLogEntry(e, { utc: true }), /^2026-11-29T10:00:00\.000Z WARN {2}map\.peer-skipped peer=k field=endpoint$/);
    for (const bad of ['', 'plain text', '{"ts":"x","level":"info","event":"e"}', '{"ts":"2026-11-29T10:00:00Z","level":"loud","event":"e"}', '[1,2]', '{"ts":"2026-11-29T10:00:00Z","level":"info"}', '{']) {
      assert.equal(parseLogLine(bad), null, bad);
    }
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void parseLogLine(s)));
    fc.assert(fc.property(fc.json(), (s) => void parseLogLine(s)));
    const now = Date.parse('2026-11-29T12:00:00Z');
    assert.equal(parseSince('10m', now), now - 600_000);
    assert.equal(parseSince('2h', now), now - 7_200_000);
    assert.equal(parseSince('2026-11-29T11:00:00Z', now), now - 3_600_000);
    assert.equal(parseSince('ten minutes', now), null);
    const sp = new LineSplitter();
    assert.deepEqual(sp.push('a\nb'), ['a']);
    assert.deepEqual(sp.push('c\n'), ['bc']);
  });

  test('filters by time, level and count; --json; malformed lines are skipped and counted; -f follows', async (t) => {
    const d = tempDir();
    t.after(d.cleanup);
    const home = join(d.path, 'home');
    mkdirSync(home, { mode: 0o700 });
    const log = join(home, 'meshd.log');
    const old = new Date(Date.now() - 3_600_000).toISOString();
    const recent = new Date(Date.now() - 60_000).toISOString();
    writeFileSync(log, [entry(old, 'info', 'daemon.starting', { pid: 1 }), 'garbage line', entry(recent, 'debug', 'dp.tick'), entry(recent, 'error', 'map.apply-failed', { error: 'boom here' }), ''].join('\n'));
    const all = runMeshd(['--home', home, 'logs', '--utc']);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout.trim().split('\n').length, 3);
    assert.match(all.stdout, /ERROR map\.apply-failed error="boom here"/);
    assert.match(all.stderr, /1 line of .* is not log entries|1 line of .* is not a log entr|1 line .*skipped/);
    const since = runMeshd(['--home', home, 'logs', '--since', '10m']);
    assert.doesNotMatch(since.stdout, /daemon\.starting/);
    assert.match(since.stdout, /map\.apply-failed/);
    const level = runMeshd(['--home', home, 'logs', '--level', 'warn', '--json']);
    const lines = level.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; error?: string });
    assert.deepEqual(lines.map((l) => l.event), ['map.apply-failed']);
    assert.equal(lines[0]!.error, 'boom here');
    assert.equal(runMeshd(['--home', home, 'logs', '-n', '1']).stdout.trim().split('\n').length, 1);
    assert.equal(runMeshd(['--home', home, 'logs', '--since', 'yesterday-ish']).code, 2);
    assert.equal(runMeshd(['--home', join(d.path, 'none'), 'logs']).code, 1);

    // -f: what is appended shows up (and a partial line only once it is complete)
    const child = spawn(process.execPath, [MESHD_BIN, '--home', home, 'logs', '-f', '-n', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const seen = (re: RegExp, ms: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; got: ${out}`)), ms);
        const check = () => {
          if (re.test(out)) {
            clearTimeout(timer);
            child.stdout.off('data', check);
            resolve();
          }
        };
        child.stdout.on('data', check);
        check();
      });
    // its first read of the file is done when it says it follows
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`logs -f did not start: ${err}`)), 20_000);
      const check = () => {
        if (!err.includes('following')) return;
        clearTimeout(timer);
        resolve();
      };
      child.stderr.on('data', check);
    });
    const line = entry(new Date().toISOString(), 'info', 'peer.appended', { n: 1 });
    appendFileSync(log, line.slice(0, 20));
    appendFileSync(log, line.slice(20) + '\n');
    await seen(/INFO {2}peer\.appended n=1/, 10_000);
    assert.doesNotMatch(out, /map\.apply-failed/);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0);
  });
});

/**
 * The network, peer, acl and status commands end to end against a real @web5/dwn-server, and
 * the embedded DWN: `network create` without --endpoint, later commands starting it on demand,
 * and `meshd dwn serve` bound to 127.0.0.1.
 */
import { runCliCaptured } from '../helpers/in-process-cli.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { initProfile } from '../../src/identity/profile.js';
import { createNetwork } from '../../src/control/network-ops.js';
import { isDwnUp } from '../../src/control/embedded.js';

const tag = `${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
let dwn: TestDwn;
let root: string;

const meshd = runCliCaptured;

async function json<T>(args: string[]): Promise<T> {
  const r = await meshd([...args, '--json']);
  assert.equal(r.code, 0, `meshd ${args.join(' ')}: ${r.stderr.join(' | ')}`);
  return JSON.parse(r.stdout) as T;
}

function home(name: string): { home: string; did: string } {
  const h = join(root, name);
  return { home: h, did: initProfile(h).profile.did };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), `meshd-cli-${tag}-`));
  dwn = await startTestDwn();
});

after(async () => {
  await dwn?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('network, peer, acl and status commands', () => {
  test('the whole life of a network through the CLI', async () => {
    const owner = home('owner');
    const dev = home('dev');
    const member = home('member');
    const mdev = home('mdev');
    const created = await json<{ networkId: string; meshIP: string; roles: string[] }>(['network', 'create', `cli-${tag}`, '--endpoint', dwn.url, '--home', owner.home]);
    assert.deepEqual(created.roles, ['owner', 'node']);
    const human = await meshd(['status', '--home', owner.home]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`Network: "cli-${tag}" ${created.networkId}`));

    // before joining, a clear one-line error saying what to run
    const notJoined = await meshd(['peer', 'list', '--home', dev.home]);
    assert.equal(notJoined.code, 1);
    assert.equal(notJoined.stderr.length, 1);
    assert.match(notJoined.stderr[0]!, /has not joined a network.*meshd network (create|join)/);

    const added = await json<{ role: string; meshIP: string }>(['peer', 'add', dev.did, '--home', owner.home]);
    assert.equal(added.role, 'node');
    const joined = await json<{ roles: string[]; meshIP: string }>(['network', 'join', '--anchor', owner.did, '--network', created.networkId, '--endpoint', dwn.url, '--home', dev.home]);
    assert.deepEqual(joined.roles, ['node']);
    assert.equal(joined.meshIP, added.meshIP);

    // owner-only commands run by a device
    for (const args of [['peer', 'add', mdev.did], ['peer', 'add', mdev.did, '--member'], ['peer', 'remove', owner.did], ['peer', 'approve', mdev.did]]) {
      const r = await meshd([...args, '--home', dev.home]);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr.length, 1);
      assert.match(r.stderr[0]!, /^meshd: only the network owner can /);
    }
    const policyFile = join(root, 'policy.json');
    writeFileSync(policyFile, JSON.stringify({ version: 2, defaultAction: 'drop', groups: {}, rules: [{ action: 'accept', src: [owner.did], dst: ['*'] }] }));
    const devAcl = await meshd(['acl', 'set', policyFile, '--home', dev.home]);
    assert.equal(devAcl.code, 1);
    assert.match(devAcl.stderr[0]!, /only the network owner can set the ACL policy/);

    // ACL policy: invalid file, valid file, stale version
    const badFile = join(root, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ version: 3, rules: [{ action: 'accept', src: ['group:x'], dst: ['*'] }] }));
    const bad = await meshd(['acl', 'set', badFile, '--home', owner.home]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr[0]!, /invalid ACL policy: .*undefined group "x"/);
    assert.equal((await json<{ version: number }>(['acl', 'set', policyFile, '--home', owner.home])).version, 2);
    const stale = await meshd(['acl', 'set', policyFile, '--home', owner.home]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr[0]!, /not newer than the current version 2/);
    const shown = await json<{ policy: { version: number }; compiled: { rules: { src: { peers: string[] } }[] } }>(['acl', 'show', '--home', dev.home]);
    assert.equal(shown.policy.version, 2);
    assert.equal(shown.compiled.rules[0]!.src.peers.length, 1);

    // a member requests a device; the owner sees it pending and approves it
    assert.equal((await json<{ role: string }>(['peer', 'add', member.did, '--member', '--home', owner.home])).role, 'member');
    await json(['network', 'join', '--anchor', owner.did, '--network', created.networkId, '--endpoint', dwn.url, '--home', member.home]);
    assert.equal((await json<{ role: string }>(['peer', 'add', mdev.did, '--home', member.home])).role, 'request');
    const pending = await json<{ pending: { did: string; member: string }[]; members: { did: string }[] }>(['peer', 'list', '--home', owner.home]);
    assert.deepEqual(pending.pending.map((p) => [p.did, p.member]), [[mdev.did, member.did]]);
    assert.deepEqual(pending.members.map((m) => m.did), [member.did]);
    const approved = await json<{ role: string; meshIP: string }>(['peer', 'approve', mdev.did, '--home', owner.home]);
    assert.equal(approved.role, 'node');
    await json(['network', 'join', '--anchor', owner.did, '--network', created.networkId, '--endpoint', dwn.url, '--home', mdev.home]);

    const list = await json<{ peers: { did: string; owner: string; self: boolean; hostname: string }[] }>(['peer', 'list', '--home', dev.home]);
    assert.deepEqual(list.peers.map((p) => p.did).sort(), [owner.did, dev.did, mdev.did].sort());
    assert.equal(list.peers.find((p) => p.did === mdev.did)!.owner, member.did);
    assert.equal(list.peers.find((p) => p.self)!.did, dev.did);
    const table = await meshd(['peer', 'list', '--home', dev.home]);
    assert.match(table.stdout, /MESH IP/);
    assert.match(table.stdout, /\(this device\)/);
    const st = await json<{ network: { epoch: number; roles: string[] }; peers: unknown[] }>(['status', '--home', mdev.home]);
    assert.deepEqual(st.network.roles, ['node']);
    assert.equal(st.peers.length, 3);

    // removing the member takes the member's device with it and rotates the key
    const removed = await json<{ removed: string[]; epoch: number }>(['peer', 'remove', member.did, '--home', owner.home]);
    assert.deepEqual(removed.removed, [member.did, mdev.did].sort());
    assert.equal(removed.epoch, 1);
    const after = await json<{ peers: { did: string }[] }>(['peer', 'list', '--home', dev.home]);
    assert.deepEqual(after.peers.map((p) => p.did).sort(), [owner.did, dev.did].sort());
    // the removed device can no longer read the network
    const gone = await meshd(['peer', 'list', '--home', mdev.home]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr.length, 1);

    // leaving: the removed device leaves cleanly
    assert.equal((await meshd(['network', 'leave', '--home', mdev.home])).code, 0);
    assert.equal(existsSync(join(mdev.home, 'profiles', 'default', 'network.json')), false);
    // with the DWN down, leave fails with one line; --force forgets anyway
    await dwn.halt();
    try {
      const leave = await meshd(['network', 'leave', '--home', dev.home]);
      assert.equal(leave.code, 1);
      assert.equal(leave.stderr.length, 1);
      assert.ok(leave.stderr[0]!.includes(dwn.url));
      const forced = await json<{ warning?: string }>(['network', 'leave', '--force', '--home', dev.home]);
      assert.match(forced.warning ?? '', /cannot reach the DWN/);
      assert.equal(existsSync(join(dev.home, 'profiles', 'default', 'network.json')), false);
    } finally {
      await dwn.restart();
    }
    const st2 = await json<{ network: null }>(['status', '--home', dev.home]);
    assert.equal(st2.network, null);
  });

  test('usage errors exit 2', async () => {
    const h = home('usage');
    const r = await meshd(['network', 'join', '--anchor', 'did:web:x', '--network', 'abc', '--endpoint', dwn.url, '--home', h.home]);
    assert.equal(r.code, 2);
    assert.match(r.stderr[0]!, /--anchor is not a valid did:jwk/);
    const r2 = await meshd(['network', 'create', 'x', '--cidr', '10.0.0.1/8', '--endpoint', dwn.url, '--home', h.home]);
    assert.equal(r2.code, 2);
  });
});

describe('the embedded DWN', () => {
  test('network create without --endpoint uses it; later commands start it on demand; dwn serve runs it on 127.0.0.1', async () => {
    const port = await freePort();
    const owner = home('embedded-owner');
    const dev = home('embedded-dev');
    const profile = initProfile(owner.home).profile;
    const r = await createNetwork({ home: owner.home, profile }, { name: 'embedded', embeddedPort: port });
    assert.equal(r.embedded, true);
    assert.equal(r.endpoint, `http://127.0.0.1:${port}`);
    assert.equal(await isDwnUp(r.endpoint), false, 'the command stops the server it started');
    assert.ok(existsSync(join(owner.home, 'dwn', 'dwn.db')));
    // a later command starts it from the same storage
    const added = await json<{ role: string }>(['peer', 'add', dev.did, '--home', owner.home]);
    assert.equal(added.role, 'node');

    // `meshd dwn serve` in a child process, as a user would run it
    const script = join(root, 'serve.mjs');
    const dist = new URL('../../', import.meta.url);
    writeFileSync(
      script,
      [
        `import { createRootProgram, reportError, processIo } from ${JSON.stringify(new URL('src/cli/program.js', dist).href)};`,
        `import { registerDwn } from ${JSON.stringify(new URL('src/cli/commands/dwn.js', dist).href)};`,
        'const p = createRootProgram(processIo); registerDwn(p, processIo);',
        'try { await p.parseAsync(process.argv.slice(2), { from: "user" }); } catch (e) { process.exitCode = reportError(e, processIo); }',
      ].join('\n'),
    );
    const child = spawn(process.execPath, [script, 'dwn', 'serve', '--port', String(port), '--home', owner.home, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const info = await new Promise<{ url: string; host: string; port: number }>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('dwn serve did not start')), 20_000);
        child.stdout.on('data', (c: Buffer) => {
          buf += c.toString();
          try {
            resolve(JSON.parse(buf) as { url: string; host: string; port: number });
            clearTimeout(timer);
          } catch {
            // not complete yet
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`dwn serve exited ${code}`));
        });
      });
      assert.equal(info.host, '127.0.0.1');
      assert.equal(info.port, port);
      assert.equal(await isDwnUp(info.url), true);
      // bound to loopback only: another local address of this machine does not answer
      const other = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
      if (other) assert.equal(await isDwnUp(`http://${other.address}:${port}`, 1000), false);
      // commands use the running server (and leave it running)
      const list = await json<{ peers: { did: string }[] }>(['peer', 'list', '--home', owner.home]);
      assert.equal(list.peers.length, 2);
      assert.equal(await isDwnUp(info.url), true);
    } finally {
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (c) => r(c))));
      assert.equal(code, 0);
    }
    assert.equal(await isDwnUp(`http://127.0.0.1:${port}`), false);
  });
});

/**
 * Lab helpers for the WireGuard engine: `meshd engine` (from a wg-quick file) running in a
 * namespace, driven by signals (SIGHUP reloads the peers, SIGUSR1 prints stats), and a TCP bulk
 * transfer with SHA-256 on both ends. Used by test/lab/wg-interop.test.ts and bench/throughput.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { wgKeyPair, type Netns, type LabProcess } from '../../src/lab/index.js';

export const ENGINE_CLI = fileURLToPath(new URL('./fixtures/wg-engine-cli.js', import.meta.url));
export const TRANSFER = fileURLToPath(new URL('./fixtures/wg-transfer.js', import.meta.url));

export interface PeerSpec {
  publicKey: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
}

export class MeshdNode {
  private constructor(
    readonly ns: Netns,
    readonly proc: LabProcess,
    readonly ifname: string,
    readonly configFile: string,
    readonly privateKey: string,
    readonly publicKey: string,
    readonly address: string,
    readonly listenPort: number,
  ) {}

  get ip(): string {
    return this.address.split('/')[0]!;
  }

  static config(privateKey: string, address: string, listenPort: number, peers: PeerSpec[]): string {
    const lines = ['[Interface]', `PrivateKey = ${privateKey}`, `ListenPort = ${listenPort}`, `Address = ${address}`, 'MTU = 1420'];
    for (const p of peers) {
      lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIps.join(', ')}`);
      if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
      if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
    }
    return lines.join('\n') + '\n';
  }

  static async start(
    ns: Netns,
    opts: {
      address: string;
      listenPort?: number;
      peers?: PeerSpec[];
      env?: Record<string, string>;
      keys?: { privateKey: string; publicKey: string };
      /** Write a V8 CPU profile into this directory when the engine exits. */
      cpuProfileDir?: string;
    },
  ): Promise<MeshdNode> {
    const lab = ns.lab;
    const ifname = lab.newWgIfName();
    const keys = opts.keys ?? wgKeyPair();
    const listenPort = opts.listenPort ?? 51820;
    const configFile = lab.file(`${ifname}.conf`);
    writeFileSync(configFile, MeshdNode.config(keys.privateKey, opts.address, listenPort, opts.peers ?? []), { mode: 0o600 });
    const nodeFlags: string[] = [];
    if (opts.cpuProfileDir) {
      mkdirSync(opts.cpuProfileDir, { recursive: true });
      nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`);
    }
    const proc = ns.spawn([process.execPath, ...nodeFlags, ENGINE_CLI, 'engine', '--config', configFile, '--tun', ifname, '--json'], {
      env: opts.env ?? {},
      label: `meshd-${ifname}`,
    });
    await proc.waitFor(/"event":"engine-up"/, 15_000);
    return new MeshdNode(ns, proc, ifname, configFile, keys.privateKey, keys.publicKey, opts.address, listenPort);
  }

  /** Rewrite the config with these peers and make the running engine reload it. */
  async setPeers(peers: PeerSpec[]): Promise<void> {
    const before = this.count('config-reloaded');
    writeFileSync(this.configFile, MeshdNode.config(this.privateKey, this.address, this.listenPort, peers), { mode: 0o600 });
    this.proc.signal('SIGHUP');
    await until(() => this.count('config-reloaded') > before, 5000, 'config reload');
  }

  count(event: string): number {
    return this.proc.output().split('\n').filter((l) => l.includes(`"event":"${event}"`)).length;
  }

  /** Ask the engine for its stats (SIGUSR1) and parse the line it prints. */
  async stats(): Promise<{ peers: Array<{ publicKey: string; rxBytes: number; txBytes: number; lastHandshake: number }>; counters: { drops: Record<string, number> } }> {
    const before = this.count('stats');
    this.proc.signal('SIGUSR1');
    await until(() => this.count('stats') > before, 5000, 'stats line');
    const line = this.proc
      .output()
      .split('\n')
      .filter((l) => l.includes('"event":"stats"'))
      .pop()!;
    return JSON.parse(line.slice(line.indexOf('{')));
  }

  async stop(): Promise<void> {
    const exit = await this.proc.stop(5000);
    assert.equal(exit.code, 0, `meshd engine exit: ${JSON.stringify(exit)}\n${this.proc.output().slice(-2000)}`);
    assert.match(this.proc.output(), /"event":"engine-stopped"/);
    const link = await this.ns.exec(['ip', 'link', 'show', this.ifname]);
    assert.notEqual(link.code, 0, `the TUN ${this.ifname} is gone after stop`);
  }
}

export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function lastJson(proc: LabProcess): { event: string; bytes: number; sha256: string; ms: number } {
  const line = proc
    .stdout()
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  assert.ok(line, `no output from ${proc.label}: ${proc.output()}`);
  return JSON.parse(line);
}

/** Send `bytes` over TCP from one namespace to an address in another; both ends report SHA-256. */
export async function transfer(from: Netns, to: Netns, toIp: string, bytes: number, port = 5201): Promise<{ mbps: number }> {
  const recv = to.node(TRANSFER, ['recv', '--bind', `${toIp}:${port}`], { label: `recv-${port}` });
  await recv.waitFor('"ready"', 5000);
  const send = from.node(TRANSFER, ['send', '--to', `${toIp}:${port}`, '--bytes', String(bytes), '--seed', `${port}-${bytes}`], {
    label: `send-${port}`,
  });
  const ac = new AbortController();
  const timeout = sleep(90_000, undefined, { signal: ac.signal }).then(
    () => 'timeout' as const,
    () => 'cancelled' as const,
  );
  const r = await Promise.race([Promise.all([send.exited, recv.exited]), timeout]);
  ac.abort();
  if (r === 'timeout') {
    await Promise.all([send.stop(), recv.stop()]);
    assert.fail(`transfer timed out: sender ${send.output()} receiver ${recv.output()}`);
  }
  const s = lastJson(send);
  const d = lastJson(recv);
  assert.equal(s.event, 'done', send.output());
  assert.equal(d.event, 'done', recv.output());
  assert.equal(s.bytes, bytes);
  assert.equal(d.bytes, bytes, 'every byte arrived');
  assert.equal(d.sha256, s.sha256, 'SHA-256 matches');
  return { mbps: (bytes * 8) / (d.ms / 1000) / 1e6 };
}


/**
 * Reference WireGuard peer: Debian's wireguard-go in a lab namespace, configured with `wg`.
 * `WG_PROCESS_FOREGROUND=1 wireguard-go IFNAME` runs in the namespace (the tun device appears
 * there); its UAPI socket /var/run/wireguard/IFNAME.sock is shared by every namespace, so interface
 * names come from lab.newWgIfName() (unique per run). stop() kills by pid and removes the socket;
 * the lab removes it too if the process had to be killed on an exit path.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from './errors.js';
import type { Netns } from './lab.js';
import type { LabProcess } from './process.js';
import { WG_SOCKET_DIR } from './sweep.js';

export interface WgKeyPair {
  /** base64, as `wg` prints it */
  privateKey: string;
  publicKey: string;
}

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function b64urlToB64(s: string): string {
  return Buffer.from(s, 'base64url').toString('base64');
}

/** A fresh X25519 key pair in wg's base64 form. */
export function wgKeyPair(): WgKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d;
  const x = publicKey.export({ format: 'jwk' }).x;
  if (!d || !x) throw new LabError('E_LAB', 'x25519 key export failed');
  return { privateKey: b64urlToB64(d), publicKey: b64urlToB64(x) };
}

/** The public key of a base64 X25519 private key (what `wg pubkey` prints). */
export function wgPublicKey(privateKeyB64: string): string {
  const raw = Buffer.from(privateKeyB64, 'base64');
  if (raw.length !== 32) throw new LabError('E_LAB', 'a WireGuard private key is 32 bytes of base64');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (!x) throw new LabError('E_LAB', 'x25519 key export failed');
  return b64urlToB64(x);
}

export interface WgPeer {
  publicKey: string;
  /** "ip:port" */
  endpoint?: string;
  allowedIps: readonly string[];
  persistentKeepalive?: number;
  presharedKey?: string;
}

export interface WgPeerStatus {
  publicKey: string;
  endpoint: string | undefined;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface WireguardGoOptions {
  /** Tunnel address with prefix, e.g. '10.77.0.1/24'. */
  address: string;
  privateKey?: string;
  /** UDP port (default 51820; namespaces do not share ports). */
  listenPort?: number;
  /** Default 1420. */
  mtu?: number;
  peers?: readonly WgPeer[];
}

/** Parses `wg show IF dump`; lines that do not fit are skipped. */
export function parseWgDump(text: string): { publicKey: string; listenPort: number; peers: WgPeerStatus[] } | undefined {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = lines[0]?.split('\t');
  if (!head || head.length < 3) return undefined;
  const peers: WgPeerStatus[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split('\t');
    if (f.length < 8) continue;
    const [pub, , endpoint, allowed, hs, rx, tx] = f as [string, string, string, string, string, string, string];
    const nums = [hs, rx, tx].map(Number);
    if (nums.some((n) => !Number.isSafeInteger(n) || n < 0)) continue;
    peers.push({
      publicKey: pub,
      endpoint: endpoint === '(none)' ? undefined : endpoint,
      allowedIps: allowed === '(none)' ? [] : allowed.split(','),
      latestHandshake: nums[0]!,
      rxBytes: nums[1]!,
      txBytes: nums[2]!,
    });
  }
  const port = Number(head[2]);
  return { publicKey: head[1]!, listenPort: Number.isSafeInteger(port) ? port : 0, peers };
}

/** `wg` reads keys from files only (a pipe from node is a socket, which /dev/stdin cannot open). */
async function withKeyFile<T>(path: string, key: string, fn: (path: string) => Promise<T>): Promise<T> {
  writeFileSync(path, key + '\n', { mode: 0o600 });
  try {
    return await fn(path);
  } finally {
    rmSync(path, { force: true });
  }
}

export class WireguardGo {
  private constructor(
    readonly ns: Netns,
    readonly ifname: string,
    readonly process: LabProcess,
    readonly privateKey: string,
    /** As read back from the running interface. */
    readonly publicKey: string,
    readonly listenPort: number,
    /** Tunnel address with prefix. */
    readonly address: string,
  ) {}

  /** Tunnel IP without prefix. */
  get ip(): string {
    return this.address.split('/')[0]!;
  }

  get socketPath(): string {
    return join(WG_SOCKET_DIR, `${this.ifname}.sock`);
  }

  static async start(ns: Netns, opts: WireguardGoOptions): Promise<WireguardGo> {
    const lab = ns.lab;
    const ifname = lab.newWgIfName();
    const sock = join(WG_SOCKET_DIR, `${ifname}.sock`);
    lab.onCleanup(() => {
      try {
        unlinkSync(sock);
      } catch {
        /* removed by wireguard-go itself */
      }
    });
    const proc = ns.spawn(['wireguard-go', ifname], { env: { WG_PROCESS_FOREGROUND: '1' }, label: `wireguard-go-${ifname}` });
    const until = Date.now() + 5000;
    while (!existsSync(sock)) {
      if (!proc.running) throw new LabError('E_LAB', `wireguard-go exited: ${proc.output().trim()}`, { stderr: proc.output() });
      if (Date.now() > until) {
        await proc.stop();
        throw new LabError('E_TIMEOUT', `wireguard-go did not create ${sock}`, { stderr: proc.output() });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const privateKey = opts.privateKey ?? wgKeyPair().privateKey;
    const listenPort = opts.listenPort ?? 51820;
    await withKeyFile(lab.file(`${ifname}.key`), privateKey, (path) =>
      ns.run(['wg', 'set', ifname, 'listen-port', String(listenPort), 'private-key', path]),
    );
    const publicKey = (await ns.run(['wg', 'show', ifname, 'public-key'])).trim();
    await ns.ip('addr', 'add', opts.address, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'mtu', String(opts.mtu ?? 1420), 'up');
    const wg = new WireguardGo(ns, ifname, proc, privateKey, publicKey, listenPort, opts.address);
    for (const p of opts.peers ?? []) await wg.setPeer(p);
    return wg;
  }

  /** Adds or updates a peer (`wg set IF peer …`). */
  async setPeer(peer: WgPeer): Promise<void> {
    const args = ['wg', 'set', this.ifname, 'peer', peer.publicKey, 'allowed-ips', peer.allowedIps.join(',')];
    if (peer.endpoint) args.push('endpoint', peer.endpoint);
    if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive));
    if (peer.presharedKey !== undefined) {
      await withKeyFile(this.ns.lab.file(`${this.ifname}.psk`), peer.presharedKey, (path) => this.ns.run([...args, 'preshared-key', path]));
    } else {
      await this.ns.run(args);
    }
  }

  async removePeer(publicKey: string): Promise<void> {
    await this.ns.run(['wg', 'set', this.ifname, 'peer', publicKey, 'remove']);
  }

  /** Peers as `wg show IF dump` reports them. */
  async peers(): Promise<WgPeerStatus[]> {
    const d = parseWgDump(await this.ns.run(['wg', 'show', this.ifname, 'dump']));
    if (!d) throw new LabError('E_LAB', `cannot parse wg show ${this.ifname} dump`);
    return d.peers;
  }

  /** Stops wireguard-go by pid; its tun device goes with it; the socket file is removed. */
  async stop(): Promise<void> {
    await this.process.stop();
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already removed */
    }
  }
}

export function startWireguardGo(ns: Netns, opts: WireguardGoOptions): Promise<WireguardGo> {
  return WireguardGo.start(ns, opts);
}

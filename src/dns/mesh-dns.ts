/**
 * Mesh DNS for one daemon: the server on the node's own mesh IPv4 address, port 53 (and on its
 * mesh IPv6 address, same port, when it has one: IPv6-only clients ask there), and the host told
 * about it (at the IPv4 address) —
 *
 *   - systemd-resolved runs: per-link DNS and routing domains on the TUN device (resolved.ts),
 *     unless the user said `--accept-dns=false` (`--no-accept-dns`);
 *   - otherwise only with `--accept-dns` (remembered): the reversible /etc/resolv.conf edit
 *     (resolv-conf.ts). Without it nothing of the host is changed; the server still answers
 *     whoever asks it directly.
 *
 * Names other than the mesh's go to the network's `dnsServers` (when the owner set them) and
 * then to the host's own name servers, read from resolv.conf as it was before meshd edited it.
 * Nothing here may take the host's DNS down: a server that cannot start leaves the host as it
 * is; a system change that fails is logged and the server keeps serving.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseUpstream, type Upstream } from './forward.js';
import type { NameTable } from './names.js';
import { parseResolvConf, RESOLV_CONF, ResolvConfEditor, type RestoreResult } from './resolv-conf.js';
import { RESOLVED_SOCKET, resolvectlApply, resolvectlRevert, resolvedRunning, runCommand } from './resolved.js';
import { DnsServer, type DnsCounters } from './server.js';

/** The resolv.conf backup's file name in the state directory. */
const BACKUP_FILE = 'resolv.conf.backup';

export type DnsMode = 'resolved' | 'resolv.conf' | 'none';

export interface MeshDnsOptions {
  /** Where the resolv.conf backup and the remembered setting live (the daemon's home/dns). */
  stateDir: string;
  /** The TUN device (resolved's link). */
  link: string;
  /** The node's mesh IPv4 address: the server listens here. */
  address: string;
  /**
   * The node's mesh IPv6 address: the server listens here too, on the same port. Not fatal when
   * it cannot (logged; IPv4 serves alone).
   */
  address6?: string;
  /** Other addresses of this host that may have names forwarded (its mesh IPv6). */
  localAddresses?: string[];
  /** true: edit resolv.conf when resolved does not run; false: change nothing; undefined: resolved only. */
  acceptDns: boolean | undefined;
  table: NameTable;
  /** The network's `dnsServers`. */
  dnsServers: string[];
  port?: number;
  resolvConfPath?: string;
  resolvedSocket?: string;
  /** Runs a resolvectl command (tests replace it). */
  run?: (argv: readonly string[]) => Promise<void>;
  log: (level: 'info' | 'warn' | 'error', event: string, fields?: Record<string, unknown>) => void;
}

export interface MeshDnsStatus {
  address: string;
  /** The IPv6 address also served (same port), or null. */
  address6: string | null;
  port: number;
  suffix: string;
  mode: DnsMode;
  upstreams: string[];
  counters: DnsCounters;
}

/** The remembered `--accept-dns` of a daemon home (undefined: never given). */
export function readAcceptDns(stateDir: string): boolean | undefined {
  try {
    const v = (JSON.parse(readFileSync(join(stateDir, 'settings.json'), 'utf8')) as { acceptDns?: unknown }).acceptDns;
    return typeof v === 'boolean' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function writeAcceptDns(stateDir: string, acceptDns: boolean): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(stateDir, 'settings.json'), `${JSON.stringify({ acceptDns })}\n`, { mode: 0o600 });
}

/**
 * What a killed daemon left on the host, put back without a daemon (`meshd down` when none
 * runs): the resolv.conf backup in `stateDir`, when there is one.
 */
export function restoreLeftovers(stateDir: string, resolvConfPath = RESOLV_CONF): RestoreResult {
  return new ResolvConfEditor(resolvConfPath, join(stateDir, BACKUP_FILE)).restore();
}

export class MeshDns {
  private mode: DnsMode = 'none';
  private systemUpstreams: Upstream[] = [];
  private networkUpstreams: Upstream[] = [];

  private constructor(
    private readonly opts: MeshDnsOptions,
    private readonly server: DnsServer,
    private readonly server6: DnsServer | null,
    private readonly editor: ResolvConfEditor,
  ) {}

  /** The addresses this node serves on (never an upstream of its own: a loop). */
  private ownAddresses(): Set<string> {
    return new Set(this.servers.map((s) => s.address().host));
  }

  private get servers(): DnsServer[] {
    return this.server6 === null ? [this.server] : [this.server, this.server6];
  }

  /**
   * Restore what a killed run left in resolv.conf, start the server, and tell the system.
   * Fails (E_DNS) only when the server cannot listen; the host is then left as it was.
   */
  static async start(opts: MeshDnsOptions): Promise<MeshDns> {
    const editor = new ResolvConfEditor(opts.resolvConfPath ?? RESOLV_CONF, join(opts.stateDir, BACKUP_FILE));
    if (existsSync(join(opts.stateDir, BACKUP_FILE))) {
      const r = editor.restore();
      opts.log('warn', 'dns.recovered', { resolvConf: r, why: 'the previous run did not restore resolv.conf (killed?)' });
    }
    const local = new Set([opts.address, ...(opts.address6 !== undefined ? [opts.address6] : []), ...(opts.localAddresses ?? []), '127.0.0.1', '::1', '::ffff:127.0.0.1']);
    const serve = (host: string, port: number) =>
      DnsServer.start({ host, port, table: opts.table, mayForward: (client) => local.has(client), log: (event, fields) => opts.log('warn', event, fields) });
    const server = await serve(opts.address, opts.port ?? 53);
    let server6: DnsServer | null = null;
    if (opts.address6 !== undefined) {
      try {
        server6 = await serve(opts.address6, server.address().port);
      } catch (e) {
        opts.log('warn', 'dns.ipv6-listen-failed', { address: opts.address6, error: (e as Error).message, hint: 'mesh DNS answers on the IPv4 mesh address only' });
      }
    }
    const dns = new MeshDns(opts, server, server6, editor);
    dns.systemUpstreams = upstreamsOf(parseResolvConf(editor.originalText()).nameservers, dns.ownAddresses());
    dns.setNetworkServers(opts.dnsServers);
    await dns.configureSystem();
    return dns;
  }

  private async configureSystem(): Promise<void> {
    const o = this.opts;
    const address = this.server.address();
    if (address.port !== 53) return; // a system resolver can only be pointed at port 53
    const { suffix, reverseZones } = this.server.table;
    try {
      if (o.acceptDns !== false && resolvedRunning(o.resolvedSocket ?? RESOLVED_SOCKET)) {
        for (const argv of resolvectlApply(o.link, address.host, suffix, reverseZones)) await (o.run ?? runCommand)(argv);
        this.mode = 'resolved';
      } else if (o.acceptDns === true) {
        this.editor.apply(address.host, suffix);
        this.mode = 'resolv.conf';
      } else {
        o.log('info', 'dns.system-untouched', {
          hint: `mesh names resolve through ${address.host} only when asked directly; run \`meshd up --accept-dns\` to point this host's resolv.conf at it`,
        });
        return;
      }
      o.log('info', 'dns.system-configured', { mode: this.mode, server: address.host, suffix });
    } catch (e) {
      this.mode = 'none';
      o.log('warn', 'dns.system-config-failed', { error: (e as Error).message, hint: (e as { hint?: string }).hint });
    }
  }

  private setNetworkServers(servers: readonly string[]): void {
    this.networkUpstreams = upstreamsOf(servers, this.ownAddresses());
    const all = [...this.networkUpstreams, ...this.systemUpstreams.filter((s) => !this.networkUpstreams.some((n) => n.host === s.host && n.port === s.port))];
    for (const s of this.servers) s.setUpstreams(all);
  }

  /** A new network map: new names, maybe new network DNS servers. */
  update(table: NameTable, dnsServers: readonly string[]): void {
    const suffixChanged = table.suffix !== this.server.table.suffix;
    for (const s of this.servers) s.setTable(table);
    this.setNetworkServers(dnsServers);
    if (suffixChanged && this.mode !== 'none') void this.configureSystem();
  }

  nameOf(did: string): string | null {
    return this.server.nameOf(did);
  }

  status(): MeshDnsStatus {
    const a = this.server.address();
    return {
      address: a.host,
      address6: this.server6?.address().host ?? null,
      port: a.port,
      suffix: this.server.table.suffix,
      mode: this.mode,
      upstreams: this.upstreamList(),
      counters: sumCounters(this.servers.map((s) => s.counters())),
    };
  }

  private upstreamList(): string[] {
    return [...this.networkUpstreams, ...this.systemUpstreams].map((u) => (u.port === 53 ? u.host : `${u.host}:${u.port}`));
  }

  /** Undo what was changed on the host, then stop serving. */
  async stop(): Promise<void> {
    try {
      if (this.mode === 'resolved') await (this.opts.run ?? runCommand)(resolvectlRevert(this.opts.link));
      else if (this.mode === 'resolv.conf') this.opts.log('info', 'dns.resolv-conf-restored', { result: this.editor.restore() });
    } catch (e) {
      this.opts.log('warn', 'dns.system-restore-failed', { error: (e as Error).message });
    }
    this.mode = 'none';
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}

/** Name servers other than this node's own addresses (a loop otherwise). */
function upstreamsOf(servers: readonly string[], self: ReadonlySet<string>): Upstream[] {
  const out: Upstream[] = [];
  for (const s of servers) {
    const u = parseUpstream(s);
    if (u && !self.has(u.host)) out.push(u);
  }
  return out;
}

function sumCounters(list: DnsCounters[]): DnsCounters {
  const out = { ...list[0]! };
  for (const c of list.slice(1)) for (const k of Object.keys(out) as (keyof DnsCounters)[]) out[k] += c[k];
  return out;
}

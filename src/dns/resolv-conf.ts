/**
 * The reversible edit of /etc/resolv.conf (used when systemd-resolved does not run, and only when
 * the user opted in with `meshd up --accept-dns`):
 *
 *   apply:   the original text is saved to a backup file first (written whole, then renamed
 *            into place), then resolv.conf is rewritten in place (not replaced: it may be a
 *            bind mount) with a marker line, the mesh server first, the original name servers
 *            after it (so that lookups still work, after a delay, if meshd dies without
 *            restoring), the mesh suffix in front of the original search list, the original
 *            options;
 *   restore: when resolv.conf still carries the marker, the backup's text is written back; when
 *            someone else rewrote it since (a DHCP client, the admin), theirs is kept. The backup
 *            is removed either way;
 *   recover: at start-up, a backup left by a run that did not restore (killed) is restored
 *            first, so that the original name servers are read from the original text.
 *
 * A resolv.conf that is a symlink belongs to another manager (resolvconf, NetworkManager,
 * systemd-resolved): it is left alone.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MeshdError } from '../errors.js';

export const RESOLV_CONF = '/etc/resolv.conf';
/** The first line of a resolv.conf written by meshd. */
export const MARKER = '# Written by meshd (mesh DNS). `meshd down` puts the original back.';
/** glibc reads at most three name servers. */
const MAXNS = 3;

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** The name servers, search list and options of a resolv.conf text (the last search/domain line wins, as in glibc). */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if ((key === 'search' || key === 'domain') && rest.length > 0) out.search = rest;
    else if (key === 'options' && rest.length > 0) out.options.push(...rest);
  }
  return out;
}

/** The resolv.conf meshd writes: `server` first, then the original servers; `suffix` searched first. */
export function renderResolvConf(original: string, server: string, suffix: string): string {
  const o = parseResolvConf(original);
  const fallback = o.nameservers.filter((s) => s !== server).slice(0, MAXNS - 1);
  const search = [suffix, ...o.search.filter((s) => s.toLowerCase() !== suffix)].slice(0, 6);
  const lines = [MARKER, `nameserver ${server}`, ...fallback.map((s) => `nameserver ${s}`), `search ${search.join(' ')}`];
  if (o.options.length > 0) lines.push(`options ${o.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export type RestoreResult = 'restored' | 'kept-theirs' | 'nothing';

export class ResolvConfEditor {
  constructor(
    private readonly path: string,
    private readonly backupPath: string,
  ) {}

  private read(): string | null {
    try {
      return readFileSync(this.path, 'utf8');
    } catch {
      return null;
    }
  }

  private isSymlink(): boolean {
    try {
      return lstatSync(this.path).isSymbolicLink();
    } catch {
      return false;
    }
  }

  /** True when the file is meshd's (carries the marker). */
  managed(): boolean {
    return this.read()?.startsWith(MARKER) === true;
  }

  /** The text before meshd touched the file: the backup when there is one, else the file. */
  originalText(): string {
    if (existsSync(this.backupPath)) return readFileSync(this.backupPath, 'utf8');
    return this.read() ?? '';
  }

  /** Point the system at `server` for everything, `suffix` searched first. */
  apply(server: string, suffix: string): void {
    if (this.isSymlink()) {
      throw new MeshdError('E_DNS', `${this.path} is a symlink, managed by another program: meshd leaves it alone`, {
        hint: `point that program at ${server} for the mesh names, or query it directly (dig @${server} NAME)`,
      });
    }
    const current = this.read();
    if (current === null) throw new MeshdError('E_DNS', `cannot read ${this.path}`, { hint: 'mesh names work only by asking the mesh DNS server directly' });
    if (!existsSync(this.backupPath)) {
      if (current.startsWith(MARKER)) {
        throw new MeshdError('E_DNS', `${this.path} was written by meshd, but not by this one (its backup is not here)`, {
          hint: `another meshd (another --home) may manage it; else restore ${this.path} by hand and run \`meshd up\` again`,
        });
      }
      mkdirSync(dirname(this.backupPath), { recursive: true, mode: 0o700 });
      const tmp = `${this.backupPath}.tmp`;
      writeFileSync(tmp, current, { mode: 0o600 });
      renameSync(tmp, this.backupPath);
    }
    writeFileSync(this.path, renderResolvConf(this.originalText(), server, suffix));
  }

  /** Put the original back (see the module comment); removes the backup. */
  restore(): RestoreResult {
    if (!existsSync(this.backupPath)) return 'nothing';
    const original = readFileSync(this.backupPath, 'utf8');
    let result: RestoreResult = 'kept-theirs';
    if (this.managed()) {
      writeFileSync(this.path, original);
      result = 'restored';
    }
    rmSync(this.backupPath, { force: true });
    return result;
  }
}

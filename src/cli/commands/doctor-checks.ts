/**
 * The checks of `meshd doctor`, each read-only: it looks at files, asks the daemon, the DWN
 * and STUN servers, and reads the routing table — it changes nothing. Every check says ok,
 * info, warn or fail, and what to do about anything but ok/info.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseIp } from '../../util/ip.js';
import { overlaps, tryParsePrefix, type IpPrefix } from '../../util/prefix.js';

export type CheckStatus = 'ok' | 'info' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  message: string;
  /** What to run or look at (for warn and fail). */
  fix?: string;
}

export const result = (check: string, status: CheckStatus, message: string, fix?: string): CheckResult => ({ check, status, message, ...(fix !== undefined ? { fix } : {}) });

/** Directories and files of the state directory that others can read or enter (private keys live there). */
export function loosePermissions(home: string, profileDir: string): string[] {
  const out: string[] = [];
  const mode = (p: string) => statSync(p).mode & 0o777;
  for (const d of [home, join(home, 'profiles'), profileDir]) {
    try {
      if ((mode(d) & 0o077) !== 0) out.push(`${d} is mode ${mode(d).toString(8).padStart(4, '0')} (want 0700)`);
    } catch {
      // absent: nothing to leak
    }
  }
  let files: string[] = [];
  try {
    files = readdirSync(profileDir).map((f) => join(profileDir, f));
  } catch {
    // no profile directory
  }
  for (const f of files) {
    try {
      const st = statSync(f);
      if (st.isFile() && (st.mode & 0o077) !== 0) out.push(`${f} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (want 0600)`);
    } catch {
      // went away meanwhile
    }
  }
  return out;
}

/** `ip -j ARGS` parsed; [] when ip fails (no such device). */
export function ipJson<T>(args: string[]): Promise<T[] | null> {
  return new Promise((resolve) => {
    execFile('ip', ['-j', ...args], { timeout: 10_000 }, (err, stdout) => {
      if (err) return resolve(null);
      try {
        const v = JSON.parse(String(stdout || '[]')) as unknown;
        resolve(Array.isArray(v) ? (v as T[]) : null);
      } catch {
        resolve(null);
      }
    });
  });
}


interface IpRoute {
  dst?: string;
  dev?: string;
  table?: string;
  type?: string;
  protocol?: string;
}

/** Interface names other VPNs use. */
const VPN_IFNAME = /^(tailscale\d*|wg\d+|zt[a-z0-9]+|nordlynx|tun\d+|tap\d+|utun\d+|ppp\d+|nebula\d*|ham\d+|mullvad\S*|proton\S*|netbird\S*|wt\d+)$/;

/** Routes on other devices that overlap the mesh ranges, and other VPNs' interfaces. */
export async function vpnClashes(tun: string, meshRanges: string[]): Promise<CheckResult[]> {
  const ranges = meshRanges.map((m) => tryParsePrefix(m, { hostBits: 'reject' })).filter((c): c is IpPrefix => c !== null);
  const [v4, v6, links] = await Promise.all([
    ipJson<IpRoute>(['-4', 'route', 'show', 'table', 'all']),
    ipJson<IpRoute>(['-6', 'route', 'show', 'table', 'all']),
    ipJson<{ ifname?: string }>(['link', 'show']),
  ]);
  if (v4 === null && v6 === null) return [result('vpn-clash', 'warn', 'cannot read the routing table (`ip -j route`)', 'install iproute2')];
  const clashes: string[] = [];
  for (const r of [...(v4 ?? []), ...(v6 ?? [])]) {
    if (!r.dst || r.dst === 'default' || r.dev === tun || r.type === 'local' || r.type === 'broadcast' || r.type === 'multicast' || r.table === 'local') continue;
    const c = tryParsePrefix(r.dst, { hostBits: 'mask' }); // as the kernel lists it
    if (c === null || c.bits === 0) continue;
    // fe80::/64 and the like are every interface's: only the mesh ranges matter
    const hit = ranges.find((m) => overlaps(m, c));
    if (hit) clashes.push(`${r.dst} dev ${r.dev ?? '?'}${r.table && r.table !== 'main' ? ` table ${r.table}` : ''}`);
  }
  const others = (links ?? []).map((l) => l.ifname ?? '').filter((n) => n !== tun && VPN_IFNAME.test(n));
  const out: CheckResult[] = [];
  if (clashes.length > 0) {
    out.push(result('vpn-clash', 'warn', `routes of other devices overlap the mesh range ${meshRanges.join(', ')}: ${clashes.slice(0, 5).join('; ')}${clashes.length > 5 ? ` (+${clashes.length - 5})` : ''}`, 'traffic for some peers may leave through them: remove those routes or the VPN that adds them, or use another mesh CIDR'));
  } else {
    out.push(result('vpn-clash', 'ok', `no other route overlaps the mesh range ${meshRanges.join(', ')}`));
  }
  if (others.length > 0) out.push(result('other-vpns', 'info', `other VPN interfaces here: ${others.join(', ')} (no overlapping routes)`));
  return out;
}

/** Where traffic to `ip` goes: the device of `ip route get`. */
export async function routeDevice(ip: string): Promise<string | null> {
  const r = await ipJson<{ dev?: string }>(['route', 'get', ip]);
  return r?.[0]?.dev ?? null;
}

/** Addresses of a device, null when it does not exist. */
export async function deviceState(dev: string): Promise<{ up: boolean; addresses: string[] } | null> {
  const r = await ipJson<{ flags?: string[]; operstate?: string; addr_info?: { local?: string }[] }>(['addr', 'show', 'dev', dev]);
  if (r === null || r.length === 0) return null;
  const d = r[0]!;
  return { up: (d.flags ?? []).includes('UP'), addresses: (d.addr_info ?? []).map((a) => a.local ?? '').filter((a) => parseIp(a) !== null) };
}

/** GET URL/health (or /): latency and the server's clock (Date header). */
export async function probeHttp(endpoint: string, timeoutMs: number): Promise<{ ok: true; ms: number; serverTime: number | null } | { ok: false; error: string }> {
  const started = Date.now();
  try {
    const res = await fetch(new URL('/health', endpoint), { signal: AbortSignal.timeout(timeoutMs) });
    const ms = Date.now() - started;
    await res.arrayBuffer().catch(() => undefined);
    const date = res.headers.get('date');
    const t = date ? Date.parse(date) : NaN;
    // the Date header has whole seconds: the server's clock read half-way through, ±0.5 s
    return { ok: true, ms, serverTime: Number.isFinite(t) ? t + 500 - ms / 2 : null };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    return { ok: false, error: err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message) };
  }
}

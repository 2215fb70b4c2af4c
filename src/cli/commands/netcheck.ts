/**
 * `meshd netcheck [--relay URL ...] [--stun ip:port ...] [--json]`: does UDP work, our public
 * address(es), does the NAT mapping vary by destination, and each relay's latency (STUN round
 * trip to its STUN port and a DERP ping over its TCP connection).
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { UsageError } from '../../errors.js';
import { formatNetcheckReport, netcheckStandalone } from '../../engine/magicsock/netcheck.js';
import type { RelayConfig } from '../../engine/magicsock/relay-set.js';
import { action, subcommand, type CommandContext, type Io } from '../program.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** "--relay URL" with an optional STUN port: "http://host:3340/derp" or "http://host:3340/derp#stun=3479". */
export function parseRelayArg(s: string): RelayConfig {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new UsageError(`--relay "${s}" is not a URL`);
  }
  let stunPort: number | undefined;
  const m = /^#stun=(\d{1,5})$/.exec(url.hash);
  if (url.hash !== '' && m === null) throw new UsageError(`--relay "${s}": only #stun=PORT may follow the URL`);
  if (m) stunPort = Number(m[1]);
  url.hash = '';
  return { url: url.toString(), ...(stunPort !== undefined ? { stunPort } : {}) };
}

/** The relays (and their STUN ports) of the network this device is in, from its last map. */
async function networkRelays(ctx: CommandContext): Promise<RelayConfig[]> {
  const none = () => new UsageError('nothing to check: this device knows no relay of a network', { hint: 'give --relay URL and/or --stun ip:port, or run it on a device of a network with relays' });
  const [{ openProfile }, { readCachedMap, readJoinedNetwork }] = await Promise.all([import('../../identity/profile.js'), import('../../control/local-state.js')]);
  let dir: string;
  try {
    dir = openProfile(ctx.home, ctx.profile).dir;
  } catch {
    throw none();
  }
  const joined = readJoinedNetwork(dir);
  const map = joined ? readCachedMap(dir, joined.networkId) : undefined;
  const out: RelayConfig[] = (map?.relays ?? []).map((r) => ({ url: r.url, stunPort: r.stunPort }));
  for (const url of map?.network.defaultRelays ?? []) if (!out.some((r) => r.url === url)) out.push({ url });
  if (out.length === 0) throw none();
  ctx.progress(`checking the ${out.length} relay${out.length === 1 ? '' : 's'} of network "${map!.network.name}"`);
  return out;
}

export function registerNetcheck(program: Command, io: Io): void {
  const cmd = subcommand(program, 'netcheck', 'check UDP, public address, NAT mapping and relay latencies')
    .addOption(new Option('--relay <url>', 'a relay to measure (repeatable; append #stun=PORT for a non-default STUN port)').argParser(collect).default([]))
    .addOption(new Option('--stun <ip:port>', 'a STUN server to ask (repeatable)').argParser(collect).default([]))
    .addOption(new Option('--timeout <ms>', 'per-request timeout').default('3000'));
  action(cmd, io, async (ctx) => {
    const o = cmd.opts<{ relay: string[]; stun: string[]; timeout: string }>();
    const relays = o.relay.map(parseRelayArg);
    if (relays.length === 0 && o.stun.length === 0) relays.push(...(await networkRelays(ctx)));
    const timeoutMs = Number(o.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) throw new UsageError('--timeout must be 100–60000 ms');
    ctx.progress('checking…');
    const report = await netcheckStandalone({ relays, stunServers: o.stun, timeoutMs });
    ctx.print(report, () => formatNetcheckReport(report));
  });
}

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
import { action, subcommand, type Io } from '../program.js';

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

export function registerNetcheck(program: Command, io: Io): void {
  const cmd = subcommand(program, 'netcheck', 'check UDP, public address, NAT mapping and relay latencies')
    .addOption(new Option('--relay <url>', 'a relay to measure (repeatable; append #stun=PORT for a non-default STUN port)').argParser(collect).default([]))
    .addOption(new Option('--stun <ip:port>', 'a STUN server to ask (repeatable)').argParser(collect).default([]))
    .addOption(new Option('--timeout <ms>', 'per-request timeout').default('3000'));
  action(cmd, io, async (ctx) => {
    const o = cmd.opts<{ relay: string[]; stun: string[]; timeout: string }>();
    if (o.relay.length === 0 && o.stun.length === 0) {
      throw new UsageError('nothing to check', { hint: 'give --relay URL and/or --stun ip:port' });
    }
    const timeoutMs = Number(o.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) throw new UsageError('--timeout must be 100–60000 ms');
    ctx.progress('checking…');
    const report = await netcheckStandalone({ relays: o.relay.map(parseRelayArg), stunServers: o.stun, timeoutMs });
    ctx.print(report, () => formatNetcheckReport(report));
  });
}

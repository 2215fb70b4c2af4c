/**
 * `meshd ping PEER [-c N] [--until-direct] [--timeout S]`: disco pings through the daemon, on
 * the path the peer's traffic takes now, one line per reply with the path and the round trip:
 *
 *   pong from b (10.200.4.7) via relay fra (https://198.51.100.10:3340/derp) in 3.1 ms
 *   pong from b (10.200.4.7) via 203.0.113.11:51820 in 0.6 ms
 *
 * The first ping of an idle peer goes over the relay and starts path discovery, as a packet
 * would; later ones take the direct path once it answers. Exit 0 after a reply (with
 * --until-direct: a direct one), 1 otherwise, with the reason.
 */
import { daemonDir } from './network-target.js';
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshdError, UsageError } from '../../errors.js';
import { callDaemon } from '../../daemon/api.js';
import type { PingAnswer } from '../../daemon/ping.js';
import { action, subcommand, type Io } from '../program.js';

function formatReply(a: PingAnswer): string {
  const who = `${a.peer.hostname ?? a.peer.meshIP} (${a.peer.meshIP})`;
  if (!a.reply) return `ping ${who} timed out${a.sent === 'no-path' ? ' (no relay and no known address for it)' : ''}`;
  const via = a.reply.via === 'relay' ? `relay ${a.reply.region ? `${a.reply.region} (${a.reply.address})` : a.reply.address}` : a.reply.address;
  return `pong from ${who} via ${via} in ${a.reply.latencyMs.toFixed(1)} ms`;
}

function positiveInt(s: string, what: string, max: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${what} must be a whole number from 1 to ${max}`);
  return n;
}

export function registerPing(program: Command, io: Io): void {
  const cmd = subcommand(program, 'ping <peer>', 'disco-ping a peer (host name, mesh IP or DID) and show the path each reply took')
    .option('-c, --count <n>', 'how many pings', '10')
    .option('--until-direct', 'stop at the first reply over a direct path; exit 1 if none comes')
    .option('--timeout <seconds>', 'how long to wait for each reply (at most 5)', '5')
    .option('--interval <seconds>', 'pause after each reply', '1');
  action(cmd, io, async (ctx, peer: string) => {
    const o = cmd.opts<{ count: string; untilDirect?: boolean; timeout: string; interval: string }>();
    const count = positiveInt(o.count, '--count', 10_000);
    const timeoutS = Number(o.timeout);
    if (!(timeoutS > 0 && timeoutS <= 5)) throw new UsageError('--timeout must be more than 0 and at most 5 seconds');
    const intervalS = Number(o.interval);
    if (!(intervalS >= 0 && intervalS <= 60)) throw new UsageError('--interval must be 0–60 seconds');
    let replies = 0;
    let last: PingAnswer | undefined;
    for (let n = 1; n <= count; n++) {
      const a = await callDaemon<PingAnswer>(daemonDir(ctx), 'POST', '/v0/ping', { peer, timeoutMs: Math.round(timeoutS * 1000) }, timeoutS * 1000 + 10_000);
      last = a;
      if (ctx.json) io.stdout(JSON.stringify({ seq: n, ...a }));
      else io.stdout(formatReply(a));
      if (n === 1 && a.acl === 'some' && !ctx.json) ctx.progress('note: the ACL policy lets only some protocols or ports from this device through to it (`meshd acl show`)');
      if (a.reply) {
        replies++;
        if (o.untilDirect && a.reply.via === 'direct') return;
        if (n < count && intervalS > 0) await sleep(intervalS * 1000);
      }
    }
    const who = last ? `${last.peer.hostname ?? last.peer.meshIP} (${last.peer.meshIP})` : peer;
    if (replies === 0) {
      throw new MeshdError('E_TIMEOUT', `no reply from ${who} to ${count} ping${count === 1 ? '' : 's'}`, {
        hint: 'its daemon may be stuck or its network down; `meshd status` here and on that machine, `meshd netcheck`',
      });
    }
    if (o.untilDirect) {
      throw new MeshdError('E_TIMEOUT', `no direct path to ${who} after ${count} ping${count === 1 ? '' : 's'}: its replies came over the relay`, {
        hint: 'both NATs must keep one mapping per socket; `meshd netcheck` on each side shows an endpoint-dependent (symmetric) NAT',
      });
    }
  });
}

/**
 * `npm run demo`: the README quick start, for real, on three hosts built from network
 * namespaces on this machine — one public (the owner, running the embedded DWN and a relay),
 * one behind a cone NAT, one behind a symmetric NAT. It pings across the mesh, shows
 * `meshd status`, removes a peer and shows it cut off, then removes everything it made.
 * Needs root (namespaces, TUN devices) and iproute2 + iptables.
 */
import { fileURLToPath } from 'node:url';
import { natLab, ping, type Host, type NatLab } from '../lab/index.js';
import { missingDemoPrereqs } from './prereqs.js';

const BIN = fileURLToPath(new URL('../../../bin/meshd.js', import.meta.url));
const DWN_PORT = 8787;
const RELAY_PORT = 3340;

interface DemoHost {
  label: string;
  host: Host;
  home: string;
}

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(s + '\n');

async function meshd(h: DemoHost, args: string[], opts: { quiet?: boolean; allowFail?: boolean } = {}): Promise<string> {
  say(bold(`[${h.label}]$ meshd ${args.join(' ')}`));
  const r = await h.host.ns.exec([process.execPath, BIN, '--home', h.home, ...args], { timeoutMs: 120_000 });
  const out = (r.stdout + r.stderr).trimEnd();
  if (!opts.quiet && out) say(dim(out.split('\n').map((l) => `    ${l}`).join('\n')));
  if (r.code !== 0 && !opts.allowFail) throw new Error(`meshd ${args[0]} failed on ${h.label}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

async function pingReport(from: DemoHost, to: DemoHost, ip: string, expectOk: boolean): Promise<boolean> {
  const r = await ping(from.host.ns, ip, { count: 3, timeoutMs: 8000 });
  const mark = r.ok === expectOk ? 'ok ' : 'BAD';
  say(`  ${mark} ${from.label.padEnd(9)} → ${to.label.padEnd(9)} ${ip.padEnd(15)} ${r.ok ? `${r.received}/${r.sent} replies, ${r.rttMs?.toFixed(1) ?? '?'} ms` : 'no reply'}`);
  return r.ok === expectOk;
}

async function waitForPing(from: DemoHost, ip: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if ((await ping(from.host.ns, ip, { count: 1, timeoutMs: 1000 })).ok) return true;
  }
  return false;
}

async function main(): Promise<number> {
  const missing = missingDemoPrereqs();
  if (missing.length > 0) {
    process.stderr.write(`meshd demo: ${missing.join('; ')}\n`);
    process.stderr.write('meshd demo: run it as root on Linux with iproute2 and iptables (e.g. `sudo npm run demo`).\n');
    return 1;
  }
  const t0 = Date.now();
  say(bold('Building three hosts in network namespaces: public, behind a cone NAT, behind a symmetric NAT…'));
  let lab: NatLab | undefined;
  let failures = 0;
  try {
    lab = await natLab({ a: 'cone', b: 'symmetric' });
    const home = (n: string) => lab!.lab.file(`home-${n}`);
    const pub: DemoHost = { label: 'public', host: lab.relay, home: home('public') };
    const cone: DemoHost = { label: 'cone', host: lab.a, home: home('cone') };
    const sym: DemoHost = { label: 'symmetric', host: lab.b, home: home('symmetric') };
    say(`  public    ${pub.host.addr}`);
    say(`  cone      ${cone.host.addr} behind NAT ${lab.routers.a?.wanAddr ?? ''}`);
    say(`  symmetric ${sym.host.addr} behind NAT ${lab.routers.b?.wanAddr ?? ''}`);
    say();

    say(bold('1. On the first machine: create the network (embedded DWN + a relay here).'));
    const created = JSON.parse(
      await meshd(pub, ['up', '--create', 'demo', '--dwn-listen', '0.0.0.0', '--relay', `${pub.host.addr}:${RELAY_PORT}`, '--json'], { quiet: true }),
    ) as { identity: { did: string; meshIP: string }; network: { id: string } };
    say(dim(`    Network "demo" created: ${created.network.id}\n    Mesh IP: ${created.identity.meshIP}`));
    const endpoint = `http://${pub.host.addr}:${DWN_PORT}`;

    say(bold('\n2. On the other machines: create their identities.'));
    const ids: Record<string, { did: string; meshIP: string }> = {};
    for (const h of [cone, sym]) {
      const j = JSON.parse(await meshd(h, ['init', '--json'], { quiet: true })) as { did: string; meshIP: string };
      ids[h.label] = j;
      say(dim(`    ${h.label}: ${j.did.slice(0, 40)}…`));
    }

    say(bold('\n3. Back on the first machine: add them.'));
    for (const h of [cone, sym]) await meshd(pub, ['peer', 'add', ids[h.label]!.did], { quiet: true });

    say(bold('\n4. On each of them: join and start.'));
    const meshIPs: Record<string, string> = { public: created.identity.meshIP };
    for (const h of [cone, sym]) {
      const j = JSON.parse(
        await meshd(h, ['up', '--endpoint', endpoint, '--anchor', created.identity.did, '--network', created.network.id, '--json'], { quiet: true }),
      ) as { identity: { meshIP: string } };
      meshIPs[h.label] = j.identity.meshIP;
      say(dim(`    ${h.label} is up at ${j.identity.meshIP}`));
    }

    say(bold('\n5. Every machine reaches every other at 10.200.x.x:'));
    const all = [pub, cone, sym];
    for (const from of all) for (const to of all) if (from !== to) await waitForPing(from, meshIPs[to.label]!, 15_000);
    for (const from of all) for (const to of all) if (from !== to && !(await pingReport(from, to, meshIPs[to.label]!, true))) failures++;

    say(bold('\n6. meshd status on the host behind the cone NAT:'));
    await meshd(cone, ['status']);

    say(bold('\n7. Remove the symmetric-NAT host from the network:'));
    await meshd(pub, ['peer', 'remove', ids.symmetric!.did]);
    await new Promise((r) => setTimeout(r, 5000));
    say('  It is cut off within seconds; the others keep talking:');
    if (!(await pingReport(sym, pub, meshIPs.public!, false))) failures++;
    if (!(await pingReport(sym, cone, meshIPs.cone!, false))) failures++;
    if (!(await pingReport(cone, pub, meshIPs.public!, true))) failures++;
    if (!(await pingReport(pub, cone, meshIPs.cone!, true))) failures++;

    say(bold('\n8. Stop everything.'));
    for (const h of [sym, cone, pub]) await meshd(h, ['down'], { allowFail: true });
  } catch (e) {
    failures++;
    process.stderr.write(`meshd demo: ${(e as Error).message}\n`);
  } finally {
    await lab?.close();
  }
  say(`\nRemoved the namespaces, daemons and devices it made. ${failures === 0 ? 'Demo passed' : `${failures} check(s) FAILED`} in ${((Date.now() - t0) / 1000).toFixed(1)} s.`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();

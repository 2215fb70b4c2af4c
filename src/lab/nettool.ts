/**
 * A small network tool the lab runs with node inside a namespace (Node cannot enter a namespace
 * itself). One JSON object per line on stdout; servers print {"event":"ready"} once listening.
 *
 *   udp-echo  --bind ADDR:PORT                 answer each datagram with the sender's "ip:port"
 *   udp-probe --bind ADDR:PORT --to H:P [--to H:P …] [--hex PAYLOAD] [--timeout MS]
 *             send from one socket to each target in turn (resent every 200 ms) until it answers
 *   tcp-echo  --bind ADDR:PORT                 write the client's "ip:port\n" and close
 *   tcp-probe --to H:P [--timeout MS]          connect, print what the server wrote
 *   tcp-ping  --to H:P [--count N] [--timeout MS]
 *             round trips of TCP connection attempts; a refused connection (RST) counts as an
 *             answer, so it needs no server: the ping of a machine without ICMP tools
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { LabError } from './errors.js';

interface Args {
  mode: string;
  bind: string | undefined;
  to: string[];
  hex: string;
  timeoutMs: number;
  count: number;
}

function usage(message: string): LabError {
  return new LabError('E_LAB', `nettool: ${message}`);
}

function hostPort(s: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw usage(`expected IPv4:PORT, got ${JSON.stringify(s)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function parseNettoolArgs(argv: readonly string[]): Args {
  const [mode, ...rest] = argv;
  if (!mode || !['udp-echo', 'udp-probe', 'tcp-echo', 'tcp-probe', 'tcp-ping'].includes(mode)) {
    throw usage(`unknown mode ${JSON.stringify(mode)}`);
  }
  const a: Args = { mode, bind: undefined, to: [], hex: '', timeoutMs: 2000, count: 1 };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i]!;
    const v = rest[i + 1];
    if (v === undefined) throw usage(`${k} needs a value`);
    switch (k) {
      case '--bind':
        hostPort(v);
        a.bind = v;
        break;
      case '--to':
        hostPort(v);
        a.to.push(v);
        break;
      case '--hex':
        if (!/^(?:[0-9a-fA-F]{2})*$/.test(v)) throw usage('--hex needs hex bytes');
        a.hex = v;
        break;
      case '--timeout':
      case '--count': {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 600_000) throw usage(`${k} needs a positive integer`);
        if (k === '--timeout') a.timeoutMs = n;
        else a.count = n;
        break;
      }
      default:
        throw usage(`unknown option ${k}`);
    }
  }
  if (a.mode.endsWith('-echo') && !a.bind) throw usage(`${a.mode} needs --bind`);
  if (!a.mode.endsWith('-echo') && a.to.length === 0) throw usage(`${a.mode} needs --to`);
  return a;
}

function emit(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function udpEcho(bind: string): void {
  const { host, port } = hostPort(bind);
  const s = createSocket('udp4');
  s.on('message', (msg: Buffer, r: RemoteInfo) => {
    const from = `${r.address}:${r.port}`;
    emit({ event: 'recv', from, len: msg.length });
    s.send(Buffer.from(from), r.port, r.address);
  });
  s.bind(port, host, () => emit({ event: 'ready', port: s.address().port }));
}

async function udpProbe(a: Args): Promise<void> {
  const s = createSocket('udp4');
  const { host, port } = a.bind ? hostPort(a.bind) : { host: '0.0.0.0', port: 0 };
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, host, () => resolve());
  });
  const local = s.address();
  const payload = a.hex ? Buffer.from(a.hex, 'hex') : Buffer.from('probe');
  for (const target of a.to) {
    const t = hostPort(target);
    const reply = await new Promise<{ msg: Buffer; r: RemoteInfo } | undefined>((resolve) => {
      const onMsg = (msg: Buffer, r: RemoteInfo): void => {
        if (r.address !== t.host || r.port !== t.port) return;
        done({ msg, r });
      };
      const send = (): void => s.send(payload, t.port, t.host);
      const every = setInterval(send, 200);
      const timer = setTimeout(() => done(undefined), a.timeoutMs);
      const done = (v: { msg: Buffer; r: RemoteInfo } | undefined): void => {
        clearInterval(every);
        clearTimeout(timer);
        s.removeListener('message', onMsg);
        resolve(v);
      };
      s.on('message', onMsg);
      send();
    });
    emit(
      reply
        ? { to: target, ok: true, local: `${local.address}:${local.port}`, reply: reply.msg.toString('hex'), text: reply.msg.toString('latin1') }
        : { to: target, ok: false, local: `${local.address}:${local.port}` },
    );
  }
  s.close();
}

function tcpEcho(bind: string): void {
  const { host, port } = hostPort(bind);
  const srv = createServer((c) => {
    const from = `${c.remoteAddress}:${c.remotePort}`;
    emit({ event: 'accept', from });
    c.on('error', () => {});
    c.end(from + '\n');
  });
  srv.listen(port, host, () => {
    const addr = srv.address();
    emit({ event: 'ready', port: typeof addr === 'object' && addr ? addr.port : port });
  });
}

function tcpAttempt(target: string, timeoutMs: number, read: boolean): Promise<object> {
  const t = hostPort(target);
  const start = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - start) / 1e6;
  return new Promise((resolve) => {
    const c = connect({ host: t.host, port: t.port });
    let data = '';
    let settled = false;
    const done = (o: object): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs);
    c.setEncoding('latin1');
    c.on('connect', () => {
      if (!read) done({ ok: true, rttMs: ms(), answer: 'connect' });
    });
    c.on('data', (d: string) => (data += d));
    c.on('end', () => done({ ok: true, rttMs: ms(), reply: data }));
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (!read && e.code === 'ECONNREFUSED') done({ ok: true, rttMs: ms(), answer: 'refused' });
      else done({ ok: false, error: e.code ?? e.message });
    });
  });
}

async function main(argv: readonly string[]): Promise<void> {
  const a = parseNettoolArgs(argv);
  switch (a.mode) {
    case 'udp-echo':
      return udpEcho(a.bind!);
    case 'tcp-echo':
      return tcpEcho(a.bind!);
    case 'udp-probe':
      return udpProbe(a);
    case 'tcp-probe':
      emit({ to: a.to[0], ...(await tcpAttempt(a.to[0]!, a.timeoutMs, true)) });
      return;
    case 'tcp-ping':
      for (let i = 0; i < a.count; i++) {
        emit({ to: a.to[0], seq: i, ...(await tcpAttempt(a.to[0]!, a.timeoutMs, false)) });
      }
      return;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`nettool: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  });
}

/**
 * Forwarding one DNS query to upstream resolvers, one after the other: each gets the query under
 * a fresh random id from a fresh socket (a random source port), and only an answer from that
 * server, with that id and the same question (decoded with dns-packet), is taken. A server that does not answer
 * in time, or answers SERVFAIL/REFUSED, hands over to the next; the last such answer is
 * returned when no server did better. A truncated UDP answer for a TCP client is asked again
 * over TCP.
 */
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { createSocket } from 'node:dgram';
import { isIPv6, Socket } from 'node:net';
import { splitHostPort } from '../util/host-port.js';

export interface Upstream {
  host: string;
  port: number;
}

/** Longest DNS message over TCP (the 2-byte length prefix). */
export const MAX_TCP_MESSAGE = 65_535;
/** Largest UDP answer read from an upstream. */
const MAX_UDP_ANSWER = 65_535;
/** The header flags' TC bit and RCODE mask. */
const TC = 0x0200;
const RCODE_SERVFAIL = 2;
const RCODE_REFUSED = 5;

/** "ip", "ip:port" or "[v6]:port" as an upstream (port 53 by default); null when malformed. */
export function parseUpstream(s: string): Upstream | null {
  const hp = splitHostPort(s.trim(), { defaultPort: 53 });
  if (!hp || hp.host === '' || !/^[0-9a-fA-F:.]+$/.test(hp.host)) return null;
  return hp;
}

/** True when `answer` answers `query` (id `id`, question `q`): same id, a response, the same question. */
function matches(id: number, q: dnsPacket.Question, answer: Buffer): boolean {
  let d: dnsPacket.DecodedPacket;
  try {
    d = dnsPacket.decode(answer);
  } catch {
    return false;
  }
  if (d.id !== id || d.type !== 'response') return false;
  const aq = d.questions?.[0];
  if (!aq) return (d.questions?.length ?? 0) === 0; // some servers answer FORMERR/SERVFAIL without the question
  return aq.name.toLowerCase() === q.name.toLowerCase() && aq.type === q.type && (aq.class ?? 'IN') === (q.class ?? 'IN');
}

function withId(msg: Buffer, id: number): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id, 0);
  return out;
}

function udpExchange(query: Buffer, q: dnsPacket.Question, up: Upstream, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = createSocket({ type: isIPv6(up.host) ? 'udp6' : 'udp4' });
    let done = false;
    const finish = (v: Buffer | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on('error', () => finish(null));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== up.port || msg.length > MAX_UDP_ANSWER) return;
      if (matches(query.readUInt16BE(0), q, msg)) finish(msg);
    });
    sock.send(query, up.port, up.host, (err) => {
      if (err) finish(null);
    });
  });
}

function tcpExchange(query: Buffer, q: dnsPacket.Question, up: Upstream, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (v: Buffer | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on('error', () => finish(null));
    sock.on('close', () => finish(null));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_TCP_MESSAGE + 2) return finish(null);
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < len + 2) return;
      const msg = buf.subarray(2, len + 2);
      finish(matches(query.readUInt16BE(0), q, msg) ? Buffer.from(msg) : null);
    });
    sock.connect(up.port, up.host, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
  });
}

export interface ForwardOptions {
  /** How long each server gets. */
  timeoutMs: number;
  /** The client asked over TCP: a truncated answer is asked again over TCP. */
  tcp: boolean;
}

/**
 * Forward `query` (a well-formed DNS query) to `upstreams` in order; resolves with the answer
 * under the query's own id, or null when none answered.
 */
export async function forwardQuery(query: Buffer, question: dnsPacket.Question, upstreams: readonly Upstream[], opts: ForwardOptions): Promise<Buffer | null> {
  const clientId = query.readUInt16BE(0);
  let fallback: Buffer | null = null;
  for (const up of upstreams) {
    const q = withId(query, randomInt(0, 0x10000));
    let a = await udpExchange(q, question, up, opts.timeoutMs);
    if (a && opts.tcp && (a.readUInt16BE(2) & TC) !== 0) a = (await tcpExchange(q, question, up, opts.timeoutMs)) ?? a;
    if (!a) continue;
    const rcode = a.readUInt16BE(2) & 0xf;
    const answer = withId(a, clientId);
    if (rcode === RCODE_SERVFAIL || rcode === RCODE_REFUSED) {
      fallback = answer;
      continue;
    }
    return answer;
  }
  return fallback;
}

/**
 * The mesh DNS server: UDP and TCP on one address. Mesh names (`<label>.<suffix>`) are answered
 * here from the name table — A, AAAA and PTR, NXDOMAIN for other names in the zone, an empty
 * answer for other types — and everything else is forwarded (forward.ts) to the upstream
 * resolvers the daemon gives it.
 *
 * Bad input never crashes it and never grows its memory: a message that does not decode (with
 * dns-packet), is not a query, or is too large is dropped and counted; a query with a question
 * count other than one gets FORMERR, another opcode NOTIMP; at most MAX_PENDING forwarded
 * queries and MAX_TCP_CLIENTS TCP connections are in flight (more are dropped and counted), and
 * a TCP connection that sends nothing for TCP_IDLE_MS is closed.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6, createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { MeshdError } from '../errors.js';
import { forwardQuery, MAX_TCP_MESSAGE, type Upstream } from './forward.js';
import { NameIndex, type NameTable } from './names.js';

/** TTL of mesh answers: short, so a renamed or re-addressed node is seen soon by caches. */
export const MESH_TTL = 10;
/** Largest UDP query accepted (EDNS clients send up to 4096-byte buffers, queries are small). */
export const MAX_UDP_QUERY = 4096;
/** Classic UDP answer limit without EDNS. */
const UDP_ANSWER_LIMIT = 512;
export const MAX_PENDING = 256;
export const MAX_TCP_CLIENTS = 64;
export const TCP_IDLE_MS = 10_000;
/** How long each upstream gets to answer a forwarded query. */
export const UPSTREAM_TIMEOUT_MS = 2000;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsCounters {
  queries: number;
  /** Answered from the name table (including NXDOMAIN in the zone). */
  local: number;
  forwarded: number;
  /** Forwarded but no upstream answered (SERVFAIL sent). */
  upstreamFailed: number;
  /** Did not decode, not a query, or too large: dropped. */
  malformed: number;
  /** FORMERR / NOTIMP / REFUSED answers. */
  rejected: number;
  /** Dropped because MAX_PENDING forwards or MAX_TCP_CLIENTS connections were in flight. */
  overloaded: number;
}

export interface DnsServerOptions {
  /** The address to listen on (UDP and TCP). */
  host: string;
  /** Port (default 53; 0: any free port). */
  port?: number;
  table: NameTable;
  upstreams?: Upstream[];
  /**
   * Who may have queries forwarded (default: everyone). Others get mesh names only, REFUSED for
   * the rest: the server is no open resolver for the whole mesh.
   */
  mayForward?: (clientAddress: string) => boolean;
  upstreamTimeoutMs?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

type Reply = Buffer | null;

export class DnsServer {
  private index: NameIndex;
  private upstreams: Upstream[];
  private pending = 0;
  private readonly tcpClients = new Set<Socket>();
  private readonly stats: DnsCounters = { queries: 0, local: 0, forwarded: 0, upstreamFailed: 0, malformed: 0, rejected: 0, overloaded: 0 };
  private closed = false;

  private constructor(
    private readonly opts: DnsServerOptions,
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {
    this.index = new NameIndex(opts.table);
    this.upstreams = [...(opts.upstreams ?? [])];
  }

  /** Listen on `host:port` (UDP and TCP); fails with E_DNS when the address cannot be bound. */
  static async start(opts: DnsServerOptions): Promise<DnsServer> {
    const udp = createSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4' });
    const tcp = createServer({ pauseOnConnect: false });
    const srv = new DnsServer(opts, udp, tcp);
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(opts.port ?? 53, opts.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(udp.address().port, opts.host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      tcp.close();
      throw new MeshdError('E_DNS', `cannot serve DNS on ${opts.host}:${opts.port ?? 53}: ${(e as Error).message}`, {
        hint: 'another DNS server may hold the port; mesh names stay unavailable until `meshd up` runs again',
        cause: e,
      });
    }
    udp.on('error', (e) => opts.log?.('dns.udp-error', { error: e.message }));
    udp.on('message', (msg, rinfo) => {
      void srv.handle(msg, 'udp', rinfo.address).then((reply) => {
        if (reply && !srv.closed) udp.send(reply, rinfo.port, rinfo.address, () => undefined);
      });
    });
    tcp.on('connection', (sock) => srv.serveTcp(sock));
    tcp.on('error', (e) => opts.log?.('dns.tcp-error', { error: e.message }));
    return srv;
  }

  address(): { host: string; port: number } {
    return { host: this.opts.host, port: this.udp.address().port };
  }

  counters(): DnsCounters {
    return { ...this.stats };
  }

  get table(): NameTable {
    return this.index.table;
  }

  setTable(table: NameTable): void {
    this.index = new NameIndex(table);
  }

  setUpstreams(upstreams: Upstream[]): void {
    this.upstreams = [...upstreams];
  }

  /** The name of a DID in the current table. */
  nameOf(did: string): string | null {
    return this.index.nameOf(did);
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.tcpClients) s.destroy();
    await Promise.all([new Promise<void>((r) => this.udp.close(() => r())), new Promise<void>((r) => this.tcp.close(() => r()))]);
  }

  private serveTcp(sock: Socket): void {
    if (this.closed || this.tcpClients.size >= MAX_TCP_CLIENTS) {
      this.stats.overloaded++;
      sock.destroy();
      return;
    }
    this.tcpClients.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('error', () => undefined);
    sock.on('close', () => this.tcpClients.delete(sock));
    let buf = Buffer.alloc(0);
    let busy = false;
    const drain = async () => {
      if (busy) return;
      busy = true;
      try {
        while (buf.length >= 2 && !sock.destroyed) {
          const len = buf.readUInt16BE(0);
          if (buf.length < len + 2) break;
          const msg = buf.subarray(2, len + 2);
          buf = buf.subarray(len + 2);
          const reply = await this.handle(msg, 'tcp', sock.remoteAddress ?? '');
          if (reply === null) {
            sock.destroy(); // a malformed message: the stream cannot be trusted any further
            return;
          }
          const head = Buffer.alloc(2);
          head.writeUInt16BE(reply.length);
          if (!sock.destroyed) sock.write(Buffer.concat([head, reply]));
        }
      } finally {
        busy = false;
      }
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_TCP_MESSAGE + 2) {
        this.stats.malformed++;
        sock.destroy();
        return;
      }
      void drain();
    });
  }

  /**
   * The reply to one message from `client` (null: dropped). Never throws: whatever a message
   * holds ends as an answer, an error answer, or a counted drop.
   */
  async handle(msg: Buffer, transport: 'udp' | 'tcp', client: string): Promise<Reply> {
    this.stats.queries++;
    if (msg.length < 12 || (transport === 'udp' && msg.length > MAX_UDP_QUERY)) {
      this.stats.malformed++;
      return null;
    }
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      this.stats.malformed++;
      return null;
    }
    if (q.type !== 'query') {
      this.stats.malformed++;
      return null;
    }
    try {
      return await this.answer(msg, q, transport, client);
    } catch (e) {
      this.opts.log?.('dns.answer-failed', { error: (e as Error).message });
      this.stats.malformed++;
      return null;
    }
  }

  private async answer(msg: Buffer, q: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp', client: string): Promise<Reply> {
    const id = q.id ?? 0;
    const rd = q.flag_rd ? dnsPacket.RECURSION_DESIRED : 0;
    const reply = (rcode: number, answers: dnsPacket.Answer[] = [], authoritative = false): Buffer =>
      dnsPacket.encode({
        type: 'response',
        id,
        flags: rd | dnsPacket.RECURSION_AVAILABLE | (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rcode,
        questions: q.questions ?? [],
        answers,
      });
    if ((q as { opcode?: string }).opcode !== 'QUERY') {
      this.stats.rejected++;
      return reply(RCODE.NOTIMP);
    }
    const questions = q.questions ?? [];
    const question = questions[0];
    if (questions.length !== 1 || !question) {
      this.stats.rejected++;
      return reply(RCODE.FORMERR);
    }
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const cls = question.class ?? 'IN';
    if (this.index.inZone(name)) {
      this.stats.local++;
      const e = this.index.lookup(name);
      if (!e) return reply(name === this.index.table.suffix ? RCODE.NOERROR : RCODE.NXDOMAIN, [], true);
      const answers: dnsPacket.Answer[] = [];
      if (cls === 'IN' || cls === 'ANY') {
        if ((question.type === 'A' || (question.type as string) === 'ANY') && e.ipv4) answers.push({ type: 'A', name: question.name, ttl: MESH_TTL, class: 'IN', data: e.ipv4 });
        if ((question.type === 'AAAA' || (question.type as string) === 'ANY') && e.ipv6) answers.push({ type: 'AAAA', name: question.name, ttl: MESH_TTL, class: 'IN', data: e.ipv6 });
      }
      return this.fit(reply(RCODE.NOERROR, answers, true), transport);
    }
    if (question.type === 'PTR' && (cls === 'IN' || cls === 'ANY')) {
      const e = this.index.reverse(name);
      if (e) {
        this.stats.local++;
        return this.fit(reply(RCODE.NOERROR, [{ type: 'PTR', name: question.name, ttl: MESH_TTL, class: 'IN', data: e.fqdn }], true), transport);
      }
    }
    if (this.index.inReverseZone(name)) {
      // a mesh address no node has (or another type): answered here, never forwarded, so that a
      // resolver that routes the mesh reverse zones to us cannot be asked back in a loop
      this.stats.local++;
      return reply(question.type === 'PTR' && !this.index.reverse(name) ? RCODE.NXDOMAIN : RCODE.NOERROR, [], true);
    }
    if (this.opts.mayForward && !this.opts.mayForward(client)) {
      this.stats.rejected++;
      return reply(RCODE.REFUSED);
    }
    if (this.upstreams.length === 0) {
      this.stats.upstreamFailed++;
      return reply(RCODE.SERVFAIL);
    }
    if (this.pending >= MAX_PENDING) {
      this.stats.overloaded++;
      return null;
    }
    this.pending++;
    this.stats.forwarded++;
    try {
      const a = await forwardQuery(msg, question, this.upstreams, { timeoutMs: this.opts.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS, tcp: transport === 'tcp' });
      if (a) return a;
      this.stats.upstreamFailed++;
      return reply(RCODE.SERVFAIL);
    } finally {
      this.pending--;
    }
  }

  /** A UDP answer over 512 bytes goes out truncated (TC, no records): the client asks over TCP. */
  private fit(answer: Buffer, transport: 'udp' | 'tcp'): Buffer {
    if (transport === 'tcp' || answer.length <= UDP_ANSWER_LIMIT) return answer;
    const d = dnsPacket.decode(answer);
    return dnsPacket.encode({ type: 'response', id: d.id ?? 0, flags: (d.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, questions: d.questions ?? [] });
  }
}

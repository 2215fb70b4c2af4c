/**
 * Reference STUN server: Debian coturn in STUN-only mode, in a lab namespace. Runs as root
 * without a config file (-n), with its pid file and database in the lab's work directory, and is
 * only reported started once it has answered a binding request.
 */
import { LabError } from './errors.js';
import type { Netns } from './lab.js';
import type { LabProcess } from './process.js';
import { udpProbe } from './probes.js';
import { stunBindingRequest, stunMappedAddress } from './stun-check.js';

export interface CoturnOptions {
  /** Address to listen on (one of the namespace's). */
  addr: string;
  /** Default 3478. */
  port?: number;
  /** How long to wait for the first answer (default 10 000 ms). */
  readyTimeoutMs?: number;
}

export class CoturnStun {
  private constructor(
    readonly ns: Netns,
    readonly addr: string,
    readonly port: number,
    readonly process: LabProcess,
  ) {}

  /** "addr:port" */
  get endpoint(): string {
    return `${this.addr}:${this.port}`;
  }

  static async start(ns: Netns, opts: CoturnOptions): Promise<CoturnStun> {
    const lab = ns.lab;
    const port = opts.port ?? 3478;
    const proc = ns.spawn(
      [
        'turnserver',
        '-n',
        '--stun-only',
        '-L',
        opts.addr,
        '-p',
        String(port),
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '--log-file',
        'stdout',
        '--simple-log',
        '--pidfile',
        lab.file('turnserver.pid'),
        '--db',
        lab.file('turndb'),
      ],
      { label: 'turnserver' },
    );
    const stun = new CoturnStun(ns, opts.addr, port, proc);
    const until = Date.now() + (opts.readyTimeoutMs ?? 10_000);
    for (;;) {
      if (!proc.running) throw new LabError('E_LAB', 'turnserver exited', { stderr: proc.output().slice(-4000) });
      const req = stunBindingRequest();
      const [r] = await udpProbe(ns, { targets: [stun.endpoint], payload: req, timeoutMs: 500 });
      if (r?.reply && stunMappedAddress(r.reply, req.subarray(8, 20)) !== undefined) return stun;
      if (Date.now() > until) {
        await proc.stop();
        throw new LabError('E_TIMEOUT', `turnserver did not answer STUN on ${stun.endpoint}`, { stderr: proc.output().slice(-4000) });
      }
    }
  }

  async stop(): Promise<void> {
    await this.process.stop();
  }
}

export function startCoturn(ns: Netns, opts: CoturnOptions): Promise<CoturnStun> {
  return CoturnStun.start(ns, opts);
}

/**
 * Prometheus metrics of one daemon, in the text exposition format (prom-client, with a Registry
 * of the daemon's own: nothing global). Every value is read from one status snapshot taken at
 * scrape time, so the data path counts nothing extra:
 *
 *   meshd_peer_rx_bytes_total / _tx_bytes_total / _handshakes_total   per peer (counters)
 *   meshd_peer_path{path="direct|relay|none"}, meshd_peer_latency_seconds, meshd_peer_online
 *   meshd_drops_total{layer,reason}       WireGuard, packet filter and magic socket drops
 *   meshd_relay_connected{relay}, meshd_dwn_connected
 *   meshd_map_refreshes_total, meshd_record_skips_total{reason}
 *
 * Served on the control socket at `GET /metrics`, and on `--metrics-listen ADDR:PORT`.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { MeshdError, UsageError } from '../errors.js';
import { joinHostPort, splitHostPort } from '../util/host-port.js';
import { MESHD_VERSION } from '../version.js';
import type { AgentStatus } from './agent-types.js';
import { RawResponse } from './api.js';

type Labels = Record<string, string>;
type Sample = [Labels, number];

interface Family {
  name: string;
  help: string;
  labels: string[];
  kind: 'counter' | 'gauge';
  samples(s: AgentStatus): Sample[];
}

function peerLabels(p: AgentStatus['peers'][number]): Labels {
  return { peer: p.meshIP, name: p.hostname ?? '' };
}

function drops(s: AgentStatus): Sample[] {
  const out: Sample[] = [];
  const dp = s.dataplane;
  if (dp) {
    for (const [reason, n] of Object.entries(dp.counters.engine.drops)) out.push([{ layer: 'wireguard', reason }, n]);
    const m = dp.counters.magicsock;
    const ms: Record<string, number> = {
      disco_bad: m.discoBad,
      disco_unknown_sender: m.discoUnknownSender,
      unknown_datagram: m.unknownDatagrams,
      relay_unknown_peer: m.relayUnknownPeer,
      relay_send_failed: m.relayDropped,
      unroutable: m.unroutable,
    };
    for (const [reason, n] of Object.entries(ms)) out.push([{ layer: 'magicsock', reason }, n]);
  }
  const f = s.filter;
  const fs: Record<string, number> = { acl: f.aclDrop, spoofed_source: f.spoof, malformed: f.malformed, fragment: f.fragment, outbound_malformed: f.outboundMalformed };
  for (const [reason, n] of Object.entries(fs)) out.push([{ layer: 'filter', reason }, n]);
  return out;
}

const FAMILIES: Family[] = [
  { name: 'meshd_info', help: 'meshd version (always 1)', labels: ['version'], kind: 'gauge', samples: () => [[{ version: MESHD_VERSION }, 1]] },
  { name: 'meshd_peers', help: 'Peers in the network map', labels: [], kind: 'gauge', samples: (s) => [[{}, s.peers.length]] },
  { name: 'meshd_peer_rx_bytes_total', help: 'Bytes received from a peer (WireGuard payload)', labels: ['peer', 'name'], kind: 'counter', samples: (s) => s.peers.map((p) => [peerLabels(p), p.rxBytes]) },
  { name: 'meshd_peer_tx_bytes_total', help: 'Bytes sent to a peer (WireGuard payload)', labels: ['peer', 'name'], kind: 'counter', samples: (s) => s.peers.map((p) => [peerLabels(p), p.txBytes]) },
  { name: 'meshd_peer_handshakes_total', help: 'WireGuard handshakes completed with a peer', labels: ['peer', 'name'], kind: 'counter', samples: (s) => s.peers.map((p) => [peerLabels(p), p.handshakes ?? 0]) },
  {
    name: 'meshd_peer_path',
    help: 'The path traffic to a peer takes now (1 for the one in use)',
    labels: ['peer', 'name', 'path'],
    kind: 'gauge',
    samples: (s) => s.peers.flatMap((p) => (['direct', 'relay', 'none'] as const).map((path): Sample => [{ ...peerLabels(p), path }, p.path === path ? 1 : 0])),
  },
  {
    name: 'meshd_peer_latency_seconds',
    help: 'Round trip of the path in use, from the last disco pong',
    labels: ['peer', 'name'],
    kind: 'gauge',
    samples: (s) => s.peers.filter((p) => p.latencyMs !== null).map((p) => [peerLabels(p), p.latencyMs! / 1000]),
  },
  { name: 'meshd_peer_online', help: 'Peer online: a fresh endpoint record or a recent handshake', labels: ['peer', 'name'], kind: 'gauge', samples: (s) => s.peers.map((p) => [peerLabels(p), p.online ? 1 : 0]) },
  {
    name: 'meshd_peer_last_handshake_timestamp_seconds',
    help: 'Unix time of the last handshake with a peer',
    labels: ['peer', 'name'],
    kind: 'gauge',
    samples: (s) => s.peers.filter((p) => p.lastHandshake !== null).map((p) => [peerLabels(p), Date.parse(p.lastHandshake!) / 1000]),
  },
  { name: 'meshd_drops_total', help: 'Packets dropped, by layer and reason', labels: ['layer', 'reason'], kind: 'counter', samples: drops },
  {
    name: 'meshd_relay_connected',
    help: 'Connection to a relay is up (1) or not (0); home="true" for the home relay',
    labels: ['relay', 'home'],
    kind: 'gauge',
    samples: (s) => (s.dataplane?.relays ?? []).map((r) => [{ relay: r.url, home: String(r.home) }, r.state === 'connected' ? 1 : 0]),
  },
  { name: 'meshd_dwn_connected', help: 'Live subscription to the DWN is up (1) or not (0)', labels: [], kind: 'gauge', samples: (s) => [[{}, s.control?.connected ? 1 : 0]] },
  { name: 'meshd_map_refreshes_total', help: 'Network maps rebuilt from the DWN', labels: [], kind: 'counter', samples: (s) => [[{}, s.control?.refreshes ?? 0]] },
  {
    name: 'meshd_record_skips_total',
    help: 'DWN records skipped, by reason',
    labels: ['reason'],
    kind: 'counter',
    samples: (s) => Object.entries(s.control?.skipped ?? {}).map(([reason, n]): Sample => [{ reason }, n]),
  },
  { name: 'meshd_network_epoch', help: 'Network key epoch in use', labels: [], kind: 'gauge', samples: (s) => (s.network ? [[{}, s.network.epoch]] : []) },
];

export class DaemonMetrics {
  readonly registry = new Registry();
  private snapshot: AgentStatus | null = null;

  constructor(private readonly status: () => AgentStatus) {
    const current = () => this.snapshot;
    for (const f of FAMILIES) {
      // prom-client calls collect() with the metric as `this`, just before it reads the values
      const collect = function (this: Counter | Gauge) {
        this.reset();
        const s = current();
        if (!s) return;
        for (const [labels, v] of f.samples(s)) {
          if (!Number.isFinite(v)) continue;
          if (this instanceof Counter) this.inc(labels, Math.max(0, v));
          else this.set(labels, v);
        }
      };
      const cfg = { name: f.name, help: f.help, labelNames: f.labels, registers: [this.registry], collect };
      if (f.kind === 'counter') new Counter(cfg);
      else new Gauge(cfg);
    }
  }

  /** The exposition text, from one status snapshot. */
  async render(): Promise<RawResponse> {
    this.snapshot = this.status();
    try {
      return new RawResponse(this.registry.contentType, await this.registry.metrics());
    } finally {
      this.snapshot = null;
    }
  }
}

/** Default port of `--metrics-listen` when only an address is given. */
export const METRICS_DEFAULT_PORT = 9101;

/**
 * `--metrics-listen` text: "127.0.0.1:9101", "[::1]:9101", ":9101" (loopback: metrics are not
 * published on every interface by accident), or just an address (port 9101).
 */
export function parseMetricsListen(s: string): { host: string; port: number; text: string } {
  const hp = splitHostPort(s, { defaultPort: METRICS_DEFAULT_PORT });
  if (!hp) throw new UsageError(`--metrics-listen "${s.slice(0, 80)}" is not ADDR:PORT`, { hint: 'e.g. --metrics-listen 127.0.0.1:9101' });
  const host = hp.host === '' ? '127.0.0.1' : hp.host;
  return { host, port: hp.port, text: joinHostPort(host, hp.port) };
}

/** `--metrics-listen ADDR:PORT`: plain HTTP serving `GET /metrics` (and nothing else). */
export async function serveMetrics(listen: { host: string; port: number }, render: () => Promise<RawResponse>): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    render().then(
      (r) => res.writeHead(200, { 'content-type': r.contentType }).end(r.body),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new MeshdError('E_CONFIG_INVALID', `cannot serve metrics on ${listen.host}:${listen.port}: ${e.code ?? e.message}`, { hint: 'choose another --metrics-listen address or port' })),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr !== null ? addr.port : listen.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

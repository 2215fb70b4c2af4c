/**
 * Shared bench helper: the reference throughput of this machine, measured in the same run as the
 * thing being benchmarked (see src/lab/baseline.ts), and the ratio line benchmarks print.
 *
 *   node dist/bench/lab.js [SECONDS]     prints the veth and wireguard-go baselines
 */
import { pathToFileURL } from 'node:url';
import { measureVethThroughput, measureWireguardGoThroughput, type ThroughputBaseline } from '../src/lab/index.js';

export { measureVethThroughput, measureWireguardGoThroughput, wireguardGoPair, type ThroughputBaseline } from '../src/lab/index.js';

/** "label  123.4 Mbit/s  (0.52× wireguard-go)" */
export function ratioLine(label: string, mbps: number, reference?: ThroughputBaseline): string {
  const ratio = reference && reference.mbps > 0 ? `  (${(mbps / reference.mbps).toFixed(2)}× ${reference.label})` : '';
  return `${label.padEnd(32)} ${mbps.toFixed(1).padStart(9)} Mbit/s${ratio}`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/lab: needs root (network namespaces)\n');
    process.exit(2);
  }
  const seconds = Number(process.argv[2] ?? '5');
  const veth = await measureVethThroughput({ seconds });
  const wg = await measureWireguardGoThroughput({ seconds });
  process.stdout.write(ratioLine(veth.label, veth.mbps) + '\n');
  process.stdout.write(ratioLine(wg.label, wg.mbps, veth) + '\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/lab: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}

/**
 * meshd test lab: network namespaces, links, NAT routers and reference peers, made and removed by
 * the tests, benchmarks and demo that use them (they need root, iproute2 and iptables).
 * Import everything from here: `import { Lab, natLab, … } from '../../src/lab/index.js'`.
 *
 * LIFECYCLE
 *   const lab = await Lab.create(opts?)        sweeps leftovers of crashed runs first (dead pid)
 *   …build…
 *   await lab.close()                          idempotent; also runs (synchronously) by itself on
 *                                              process exit, uncaught exception, SIGINT/SIGTERM/SIGHUP
 *   In node:test:  t.after(() => lab.close())  (or use test/lab/helpers.ts: labFor(t), …)
 *   close = stop spawned processes (SIGTERM, then SIGKILL by pid) → kill by pid anything else still
 *   in the lab's namespaces (e.g. a daemon that forked) → onCleanup steps (wg sockets) →
 *   `ip netns del` → remove lab.workDir (kept with MESHD_LAB_KEEP=1, for the logs).
 *
 * NAMES (names.ts) — all ≤ 15 characters, all carry the pid: netns `mdl<pid36>-<tag><seq><role>`,
 *   wireguard interfaces `mdw<pid36>-<tag><seq>` (lab.newWgIfName()), work dir `$TMP/mdl<pid36>-<tag>`.
 *   sweepLeftovers() removes only those whose pid is dead.
 *
 * NAMESPACES AND COMMANDS
 *   lab.addNamespace(role) → Netns             loopback up
 *   lab.veth(a, aIf, b, bIf, {mtu?})           veth pair between two namespaces, both ends up
 *   lab.newWgIfName(), lab.file(name) (path in lab.workDir), lab.onCleanup(syncFn),
 *   lab.netns (all namespaces), lab.running (live processes), lab.runTag, lab.closed
 *   ns.exec(argv, {timeoutMs?, input?, env?}) → {code, signal, stdout, stderr}   never throws on exit≠0
 *   ns.run(argv, …) → stdout                   throws LabError E_LAB on exit≠0, E_TIMEOUT on timeout
 *   ns.ip(...args), ns.iptables(...args), ns.sysctl(key, value)
 *   ns.spawn(argv, {env?, logFile?, label?, stdin?}) → LabProcess   tracked; stopped on close
 *   ns.node(script, args) → LabProcess         runs with this process's node binary
 *   LabProcess: pid, child (the ChildProcess), exited, running, exitStatus, output()/stdout()/stderr()
 *     (captured tail; also a log file in lab.workDir), waitFor(regex|string, ms), stop(graceMs),
 *     signal(sig), killSync()
 *   Code under test runs inside a namespace as a process: ns.node('dist/…/fixture.js', args).
 *   exec(nsOrNameOrNull, argv, opts) / run(…) / execSync(…) also exist as plain functions.
 *
 * TOPOLOGIES (topology.ts) — each takes {lab?} (else makes its own lab; close() closes that lab)
 *   twoHostsDirect({mtu?}) → {lab, a, b, close}    a 198.51.100.1/24, b 198.51.100.2/24 on eth0
 *   natLab({a: 'cone'|'symmetric'|'none', b: …}) → {lab, internet, relay, a, b, routers: {a?, b?}, close}
 *     relay: public host 198.51.100.10; routers' WANs 203.0.113.10, .11, …; LANs 192.168.1.0/24,
 *     192.168.2.0/24 (router .1, hosts .10, .11, …); a 'none' side sits on 203.0.113.x directly.
 *   Host = {role, ns, addr, prefixLen, ifname, gateway, router}
 *
 * INTERNET AND NAT (internet.ts, nat-router.ts)
 *   Internet.create(lab): bridge namespace routing 198.51.100.0/24 ('public', servers) and
 *     203.0.113.0/24 ('isp', customers); internet.addHost(role, {network}), internet.attach(ns, …)
 *   natRouter(internet, 'cone'|'symmetric', {role?}) → NatRouter; router.addHost(role) → Host
 *     cone = MASQUERADE (port kept: same mapping for every destination); symmetric =
 *     MASQUERADE --random-fully; both with `INPUT -i wan -m conntrack --ctstate NEW -j DROP` and
 *     no unsolicited WAN→LAN forwarding; ip_forward on in the router only.
 *   router.wanAddr, lanAddr, lanSubnet, kind, udpBlocked
 *   router.blockUdp() / unblockUdp()           FORWARD -p udp DROP (TCP still passes)
 *   router.flushMappings()                     forget all NAT mappings (no conntrack tool needed)
 *   router.rebind() → new WAN address          the public address changes, mappings are lost
 *   router.setKind(kind), router.conntrack()   (conntrack table lines, for diagnosis)
 *   applyNatRules(ns, {lanIf, wanIf, kind})    the rules alone, on a namespace of your own
 *
 * REFERENCE PEERS AND TOOLS
 *   WireguardGo.start(ns, {address: '10.x.y.z/24', privateKey?, listenPort? = 51820, mtu? = 1420,
 *     peers?}) → wg {ifname, publicKey, privateKey, listenPort, ip, address, process, socketPath,
 *     setPeer({publicKey, endpoint?, allowedIps, persistentKeepalive?, presharedKey?}),
 *     removePeer(key), peers() → [{publicKey, endpoint, allowedIps, latestHandshake, rxBytes,
 *     txBytes}], stop()}                        wgKeyPair(), wgPublicKey(priv) (base64, like wg)
 *   wireguardGoPair(twoHosts, {mtu?}) → {a, b}  peered over the link, tunnel 10.77.0.1 ↔ 10.77.0.2
 *   CoturnStun.start(ns, {addr, port? = 3478}) → {endpoint, stop()}   resolves once it answers STUN
 *   Iperf3Server.start(ns, {addr, port?}) → {waitIdle(), streamsAccepted(), waitForStreams(n), stop()},
 *     iperf3Client(ns, {server, seconds?, reverse?, udpBitrate?, udpLength?, parallel?}) →
 *     {protocol, mbps, sentMbps, bytes, retransmits, lossFraction, seconds};
 *     measureIperf3(serverNs, serverAddr, clientNs, opts)
 *   ping(ns, addr, {count?, timeoutMs?, method?}) → {ok, sent, received, rttMs, method}
 *     ICMP via `ping` (iputils-ping) when installed, else TCP connect to a closed port (RST).
 *   startUdpEcho(ns, 'ip:port') / startTcpEcho(ns, 'ip:port') → LabProcess; sourcesSeen(echo)
 *     → ['ip:port', …] as the server saw them; udpProbe(ns, {targets, bind?, payload?,
 *     timeoutMs?}) → [{to, ok, local, reply}]; tcpProbe(ns, 'ip:port') → {ok, reply, error}
 *   stunBindingRequest(txId?), stunMappedAddress(msg, txId?) (minimal, independent of the engine)
 *
 * PATH MEASUREMENTS (path-bench.ts, ping-series.ts, proc-cpu.ts) — what bench/throughput.ts reports
 *   BenchPath = {label, client (sender ns), server (receiver ns), serverAddr, mtu, processes:
 *     [{label, pid, side: 'sender'|'receiver'}]}   (the tunnel's processes, CPU-metered)
 *   measurePath(path, {seconds?, streams? = 4, udpRate? = '1G', loadRate? = '100M', onProgress?})
 *     → {tcp1, tcpN, udp, rttIdle, rttCapped (TCP capped at loadRate), rttLoaded (uncapped),
 *     rttIdleAfter}; alone: measureTcp, measureUdp, measureRttIdle, measureRttUnderLoad
 *   pingSeries(ns, addr, {count, intervalS? = 0.01}) → {sent, received, rttsMs, medianMs, p99Ms, …}
 *   CpuMeter.start([{label, pid}]).stop() → [{label, pid, cpuSeconds}]   (/proc/PID/stat utime+stime)
 *
 * BASELINES (baseline.ts) — for benchmarks that print ratios against the same run
 *   measureWireguardGoThroughput({seconds?, mtu?, lab?}), measureVethThroughput(…)
 *     → {label, mbps, sentMbps, retransmits, seconds, …}
 *
 * Errors: LabError (code E_LAB or E_TIMEOUT) with .argv and .stderr of the failing command.
 * Addresses: only 198.51.100.0/24, 203.0.113.0/24, 192.168.N.0/24 and tunnel ranges, all inside
 * the lab's own namespaces.
 */
export { LabError } from './errors.js';
export { exec, execSync, run, nsArgv, onPath, DEFAULT_EXEC_TIMEOUT_MS, type ExecOptions, type ExecResult, type NsRef } from './exec.js';
export { LabProcess, type ProcessExit, type SpawnOptions } from './process.js';
export { Lab, Netns, type LabOptions } from './lab.js';
export type { Host, HostRouter } from './host.js';
export { NETNS_PREFIX, WG_IF_PREFIX, MAX_IFNAME, parseLabName, type ParsedLabName } from './names.js';
export { sweepLeftovers, listNetns, netnsPids, pidAlive, WG_SOCKET_DIR, type SweepReport } from './sweep.js';
export { Internet, INTERNET_NETWORKS, type InternetNetwork, type Attachment, type AttachOptions } from './internet.js';
export { NatRouter, natRouter, applyNatRules, NAT_LAN_IF, NAT_WAN_IF, type NatKind, type NatRulesOptions } from './nat-router.js';
export { twoHostsDirect, natLab, type TwoHosts, type NatLab, type NatSpec, type TopologyOptions } from './topology.js';
export {
  WireguardGo,
  startWireguardGo,
  wgKeyPair,
  wgPublicKey,
  parseWgDump,
  type WgKeyPair,
  type WgPeer,
  type WgPeerStatus,
  type WireguardGoOptions,
} from './ref-wireguard-go.js';
export { CoturnStun, startCoturn, type CoturnOptions } from './ref-coturn.js';
export { Iperf3Server, iperf3Client, measureIperf3, parseIperf3Json, type Iperf3Result, type Iperf3ClientOptions } from './ref-iperf3.js';
export { ping, parsePingOutput, type PingResult, type PingOptions, type PingMethod } from './ping.js';
export {
  NETTOOL_PATH,
  udpProbe,
  tcpProbe,
  tcpPing,
  startUdpEcho,
  startTcpEcho,
  sourcesSeen,
  type UdpProbeReply,
  type TcpProbeResult,
} from './probes.js';
export { stunBindingRequest, stunMappedAddress, STUN_MAGIC_COOKIE } from './stun-check.js';
export { pingSeries, parsePingSeries, quantile, type RttSummary, type PingSeriesOptions } from './ping-series.js';
export {
  CpuMeter,
  parseProcStatCpu,
  processCpuSeconds,
  clockTicksPerSecond,
  type CpuUse,
  type MeteredProcess,
  type ProcStatCpu,
} from './proc-cpu.js';
export {
  measurePath,
  measureTcp,
  measureUdp,
  measureRttIdle,
  measureRttUnderLoad,
  DEFAULT_LOAD_RATE,
  type BenchPath,
  type PathProcess,
  type PathReport,
  type PathBenchOptions,
  type CpuReport,
  type TcpMeasurement,
  type UdpMeasurement,
  type RttMeasurement,
} from './path-bench.js';
export {
  measureWireguardGoThroughput,
  measureVethThroughput,
  wireguardGoPair,
  type ThroughputBaseline,
  type BaselineOptions,
  type WireguardGoPair,
} from './baseline.js';

/**
 * The raw functions exported by native/ (target `meshd_native`). Callers use the typed wrappers
 * (TunDevice, the UDP sockets, the AEAD batch) rather than these directly. Every function checks
 * its arguments and throws TypeError/RangeError on misuse; syscall failures throw an Error with
 * Node-style `code` ('EBUSY', …), `errno` and `syscall`. Result arrays are Int32Array(4).
 */

import { constants as osConstants } from 'node:os';

/** Bumped with native/src/meshd_native.h MESHD_ABI_VERSION whenever a signature changes. */
export const NATIVE_ABI_VERSION = 1;

/** An opaque readiness-watcher handle from pollStart. */
export type PollHandle = object;

/** aeadSeal and aeadOpen: packets start..start+count-1 of buf, in place (see AeadBatch). */
export type NativeAeadBatchCall = (
  buf: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  start: number,
  count: number,
  keys: Uint8Array,
  keyIndex: Uint32Array | null,
  counters: BigUint64Array | Uint32Array,
  ok: Uint8Array,
) => number;

/** A batched UDP send: packets start..start+count-1 of `buf`, packet i to addrs slot i; counts in `result`. */
export type NativeUdpSendCall = (
  fd: number,
  family: 4 | 6,
  buf: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  addrs: Uint8Array,
  start: number,
  count: number,
  result: Int32Array,
) => number;

/** The addon's AEAD thread setting and counters (per JavaScript environment). */
export interface NativeAeadStats {
  /** Threads a big batch is shared between (caller included; 1: off). */
  threads: number;
  /** Worker threads running (0 until the first batch big enough to share). */
  workers: number;
  /** Batches below this many bytes stay on the caller's thread. */
  minBytes: number;
  /** Batches shared between threads, the slices they were cut into, and their packets. */
  parallelBatches: number;
  parallelSlices: number;
  parallelPackets: number;
  /** Batches done on the caller's thread alone. */
  serialBatches: number;
  /** 1: packets go through the ChaCha20/Poly1305 primitives directly, 0: through EVP. */
  direct: number;
}

export interface NativeAddon {
  readonly abiVersion: number;

  /**
   * Open /dev/net/tun as IFF_TUN|IFF_NO_PI, non-blocking, close-on-exec; with `vnet`, also
   * IFF_VNET_HDR and TUNSETOFFLOAD (offloads: the TUN_F_* bits accepted). Addons built before
   * offload existed ignore `vnet` and return neither field.
   */
  tunOpen(name: string, vnet?: boolean): { fd: number; name: string; vnet?: boolean; offloads?: number };
  /**
   * fdRead for a TUN opened with vnet (headroom >= 10): super-segments are cut into packets,
   * what does not fit stays in `scratch` (tunVnetScratchSize() bytes, zeroed) for the next call.
   * result (Int32Array(8)): [count, errors, lastErrno, 0, superSegments, packetsCut, held, 0].
   */
  tunReadVnet?(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    headroom: number,
    maxLen: number,
    offsets: Uint32Array,
    lengths: Uint32Array,
    max: number,
    result: Int32Array,
    scratch: Uint8Array,
  ): number;
  /**
   * fdWrite for a TUN opened with vnet, joining consecutive TCP segments of a flow into one
   * frame (packet headers are rewritten in place). result (Int32Array(8)): [written, dropped,
   * errors, lastErrno, frames, joinedFrames, joinedPackets, 0].
   */
  tunWriteVnet?(fd: number, buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, start: number, count: number, result: Int32Array): number;
  tunVnetScratchSize?(): number;
  /** tunReadVnet's cutting of one frame (virtio header + packet), for tests; throws EINVAL, EMSGSIZE, ENOSPC, … */
  vnetSplit?(frame: Uint8Array, buf: Uint8Array, slotSize: number, headroom: number, maxLen: number, offsets: Uint32Array, lengths: Uint32Array, max: number): number;
  /** The frames tunWriteVnet would write, concatenated into out; returns how many. For tests. */
  vnetCoalesce?(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, start: number, count: number, out: Uint8Array, frameLengths: Uint32Array): number;
  /**
   * Read up to `max` packets; packet i at i*slotSize+headroom, at most maxLen bytes (headroom +
   * maxLen < slotSize: one byte past maxLen is used to spot longer packets, which are dropped and
   * counted as EMSGSIZE errors). result: [count, errors, lastErrno, 0].
   */
  fdRead(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    headroom: number,
    maxLen: number,
    offsets: Uint32Array,
    lengths: Uint32Array,
    max: number,
    result: Int32Array,
  ): number;
  /** Write packets start..start+count-1, one write() each. result: [written, dropped (EAGAIN), errors, lastErrno]. */
  fdWrite(
    fd: number,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    start: number,
    count: number,
    result: Int32Array,
  ): number;
  fdClose(fd: number): void;

  /** Call onReadable(status) on the event loop whenever fd is readable (status < 0: -errno). */
  pollStart(fd: number, onReadable: (status: number) => void): PollHandle;
  pollStop(handle: PollHandle): void;
  pollRef(handle: PollHandle, keepAlive: boolean): void;

  /** Bind a UDP socket to the address in a 20-byte address slot; IPv4-mapped → AF_INET, else dual-stack AF_INET6. */
  udpOpen(addr: Uint8Array, recvBufferSize: number, sendBufferSize: number): { fd: number; family: 4 | 6 };
  /** SO_MARK on a socket (CAP_NET_ADMIN); absent in addons built before it existed. */
  udpSetMark?(fd: number, mark: number): void;
  /** Probe UDP_SEGMENT and turn UDP_GRO on, as asked; says what the kernel supports. */
  udpOffload?(fd: number, gso: boolean, gro: boolean): { gso: boolean; gro: boolean };
  /**
   * udpSend with UDP_SEGMENT: runs of same-size datagrams to one address leave as one message.
   * A refused segmented message is sent datagram by datagram. result (Int32Array(8)): [sent,
   * dropped, errors, lastErrno, messages, segmentedMessages, refusedMessages, sawEio (1: stop asking)].
   */
  udpSendGso?: NativeUdpSendCall;
  /**
   * udpRecv on a UDP_GRO socket: coalesced buffers are cut into slots; what does not fit stays
   * in `scratch` (udpGroScratchSize() bytes, zeroed). result (Int32Array(8)): [count, truncated,
   * errors, lastErrno, coalescedMessages, held, messages, 0].
   */
  udpRecvGro?(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    max: number,
    result: Int32Array,
    scratch: Uint8Array,
  ): number;
  udpGroScratchSize?(): number;
  /** Write the bound address into `out` (20 bytes); returns the port. */
  udpLocalAddress(fd: number, out: Uint8Array): number;
  /** recvmmsg into slot starts. result: [count, truncated, errors, lastErrno]. */
  udpRecv(
    fd: number,
    buf: Uint8Array,
    slotSize: number,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    max: number,
    result: Int32Array,
  ): number;
  /** sendmmsg packets start..start+count-1 to addrs slot i. result: [sent, dropped, errors, lastErrno]. */
  udpSend: NativeUdpSendCall;

  /** ChaCha20-Poly1305 seal in place (appends the tag); returns how many were sealed. */
  aeadSeal: NativeAeadBatchCall;
  /** ChaCha20-Poly1305 open in place (verifies and strips the tag); returns how many opened. */
  aeadOpen: NativeAeadBatchCall;
  /**
   * Threads (the caller's included) that share one aeadSeal/aeadOpen batch of at least
   * `minBytes`; 0/1: every batch on the caller's thread. Workers start on first use and are
   * joined at environment teardown. Per environment (one setting, one pool, one set of counters).
   */
  aeadThreads?(threads: number, minBytes: number): number;
  aeadStats?(): NativeAeadStats;
  /** Seal/open on OpenSSL's ChaCha20 and Poly1305 primitives rather than EVP where Node exports them; returns whether they are used. */
  aeadUseDirect?(on: boolean): boolean;
  opensslVersion(): string;
  /**
   * glibc's malloc_trim(0): the C heap's free pages go back to the kernel; true when some did.
   * False elsewhere. Addons built before it existed lack it.
   */
  mallocTrim?(): boolean;
}

/** Shape of the errors the addon throws for failed syscalls. */
export interface NativeSyscallError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

const ERRNO_NAMES: ReadonlyMap<number, string> = (() => {
  const m = new Map<number, string>();
  for (const [name, num] of Object.entries(osConstants.errno)) if (!m.has(num)) m.set(num, name);
  return m;
})();

/** 'ENETUNREACH' for 101 and so on (errno as the addon's result arrays report it, positive). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? `errno ${errno}`;
}

/** Node-style error code ('EBUSY') of a native error, or undefined. */
export function nativeErrorCode(e: unknown): string | undefined {
  if (e instanceof Error && typeof (e as NativeSyscallError).code === 'string') return (e as NativeSyscallError).code;
  return undefined;
}

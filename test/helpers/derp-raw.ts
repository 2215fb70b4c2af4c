/**
 * A hand-written DERP client on a raw TCP socket (HTTP upgrade by hand, then frames), for tests
 * that play a misbehaving client or an attacker against the real relay server.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { generateBoxKeyPair, type BoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { FrameParser, FrameType, decodeFrame, frame, type DerpFrame } from '../../src/engine/relay/frames.js';
import { parseLoginChallenge, sealClientInfo } from '../../src/engine/relay/login.js';

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawClientOptions {
  /** Log in (with the connection's challenge unless `legacy`). */
  login: boolean;
  keys?: BoxKeyPair;
  /** Log in as a standard DERP client: no challenge in the box. */
  legacy?: boolean;
  /** Send these bytes (a captured ClientInfo frame) instead of a login of our own. */
  replay?: Uint8Array;
  /** Source address to connect from (any 127.0.0.0/8 address on loopback). */
  localAddress?: string;
}

export type RawClient = Awaited<ReturnType<typeof rawClient>>;

export async function rawClient(port: number, opts: RawClientOptions) {
  const sock = connect({ port, host: '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
  await once(sock, 'connect');
  sock.write('GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n');
  const frames: DerpFrame[] = [];
  const parser = new FrameParser();
  let head = Buffer.alloc(0);
  let headers = '';
  let isClosed = false;
  const closed = once(sock, 'close').then(() => {
    isClosed = true;
  });
  sock.on('error', () => undefined);
  sock.on('data', (chunk: Buffer) => {
    if (!headers) {
      head = Buffer.concat([head, chunk]);
      const i = head.indexOf('\r\n\r\n');
      if (i === -1) return;
      headers = head.subarray(0, i).toString('latin1');
      chunk = head.subarray(i + 4);
    }
    parser.push(chunk, (t, p) => frames.push(decodeFrame(t, Buffer.from(p))));
  });
  await waitFor(() => frames.some((f) => f.type === 'server-key') || isClosed, 'server key');
  const sk = frames.find((f) => f.type === 'server-key') as { key: Uint8Array; extra?: Uint8Array } | undefined;
  if (!sk) throw new Error('closed before the server key');
  const challenge = parseLoginChallenge(sk.extra);
  const keys = opts.keys ?? generateBoxKeyPair();
  let clientInfo: Uint8Array | null = null;
  if (opts.replay) {
    sock.write(opts.replay);
  } else if (opts.login) {
    const info = opts.legacy || challenge === null ? {} : { serverNonce: challenge };
    clientInfo = frame(FrameType.ClientInfo, keys.publicKey, sealClientInfo(keys.privateKey, sk.key, info));
    sock.write(clientInfo);
    await waitFor(() => frames.some((f) => f.type === 'server-info') || isClosed, 'server info');
  }
  return {
    sock,
    frames,
    headers,
    serverKey: sk.key,
    challenge,
    keys,
    closed,
    clientInfo,
    get isClosed(): boolean {
      return isClosed;
    },
    /** Payloads received from src (hex key). */
    packetsFrom(srcHex: string): string[] {
      return frames
        .filter((f): f is Extract<DerpFrame, { type: 'recv-packet' }> => f.type === 'recv-packet' && Buffer.from(f.src).toString('hex') === srcHex)
        .map((f) => Buffer.from(f.packet).toString('latin1'));
    },
    send(dst: Uint8Array, data: string): void {
      sock.write(frame(FrameType.SendPacket, dst, Buffer.from(data, 'latin1')));
    },
  };
}

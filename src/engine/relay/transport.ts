/**
 * A byte-stream transport for DERP frames, over either a raw socket (after `101 Switching
 * Protocols` with `Upgrade: DERP`) or a WebSocket (binary messages; their concatenation is the
 * stream). Both sides of the relay use it, so the server and client code never care which.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

export interface TransportHandlers {
  onData(chunk: Uint8Array): void;
  /** The transport's send buffer fell below its high-water mark again. */
  onDrain(): void;
  /** Closed, for whatever reason; called once. */
  onClose(err?: Error): void;
}

export interface FrameTransport {
  readonly kind: 'derp' | 'websocket';
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Queue bytes; false when the send buffer is above its high-water mark (wait for onDrain). */
  write(bytes: Uint8Array): boolean;
  /** Bytes accepted but not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Graceful close (flush what is queued, then close). */
  close(): void;
  /** Immediate close. */
  destroy(): void;
  readonly closed: boolean;
  /** Start delivering events. Call once. */
  bind(h: TransportHandlers): void;
}

const CLOSE_GRACE_MS = 1000;

export class SocketTransport implements FrameTransport {
  readonly kind = 'derp' as const;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private isClosed = false;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly socket: Socket) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
  }

  bind(h: TransportHandlers): void {
    let err: Error | undefined;
    this.socket.on('data', (chunk: Buffer) => {
      if (!this.isClosed) h.onData(chunk);
    });
    this.socket.on('drain', () => {
      if (!this.isClosed) h.onDrain();
    });
    this.socket.on('error', (e) => {
      err = e;
    });
    // The peer finished sending: finish ours too (upgraded HTTP sockets allow half-open).
    this.socket.on('end', () => {
      if (!this.socket.writableEnded) this.socket.end();
    });
    this.socket.on('close', () => {
      this.isClosed = true;
      if (this.graceTimer) clearTimeout(this.graceTimer);
      h.onClose(err);
    });
    if (this.socket.destroyed) {
      queueMicrotask(() => {
        if (!this.isClosed) {
          this.isClosed = true;
          h.onClose(err);
        }
      });
    }
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  get closed(): boolean {
    return this.isClosed || this.socket.destroyed;
  }

  write(bytes: Uint8Array): boolean {
    if (this.closed || this.socket.writableEnded) return false;
    return this.socket.write(bytes);
  }

  close(): void {
    if (this.closed) return;
    this.socket.end();
    this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Above this many queued bytes a WebSocket transport reports backpressure. */
const WS_HIGH_WATER = 64 << 10;

export class WebSocketTransport implements FrameTransport {
  readonly kind = 'websocket' as const;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private handlers: TransportHandlers | undefined;
  private waitingDrain = false;
  private isClosed = false;

  constructor(
    private readonly ws: WebSocket,
    remote?: { address?: string | undefined; port?: number | undefined },
  ) {
    this.remoteAddress = remote?.address ?? '';
    this.remotePort = remote?.port ?? 0;
    ws.binaryType = 'nodebuffer';
  }

  bind(h: TransportHandlers): void {
    this.handlers = h;
    let err: Error | undefined;
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.isClosed) return;
      if (!isBinary) {
        err = new Error('text WebSocket message on a DERP connection');
        this.ws.terminate();
        return;
      }
      h.onData(data);
    });
    this.ws.on('error', (e) => {
      err = e;
    });
    this.ws.on('close', () => {
      this.isClosed = true;
      h.onClose(err);
    });
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.isClosed || this.ws.readyState !== this.ws.OPEN;
  }

  write(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    this.ws.send(bytes, { binary: true }, () => {
      if (this.waitingDrain && !this.isClosed && this.ws.bufferedAmount < WS_HIGH_WATER) {
        this.waitingDrain = false;
        this.handlers?.onDrain();
      }
    });
    if (this.ws.bufferedAmount >= WS_HIGH_WATER) {
      this.waitingDrain = true;
      return false;
    }
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.ws.close(1000);
    const t = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    t.unref();
    this.ws.once('close', () => clearTimeout(t));
  }

  destroy(): void {
    this.ws.terminate();
  }
}

/**
 * "host:port" text, the one way: `[v6]:port` for IPv6, `host:port` otherwise. Parsing returns
 * null on anything malformed so each caller raises its own error with its own wording.
 */
export interface HostPort {
  host: string;
  port: number;
}

export interface SplitOptions {
  /** Accept a missing port ("host", "[v6]", a bare IPv6) and use this one. */
  defaultPort?: number;
  /** Accept port 0 (e.g. "pick a free port" for a listen address). */
  allowZeroPort?: boolean;
}

export function splitHostPort(s: string, opts: SplitOptions = {}): HostPort | null {
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) return null;
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return null;
    portText = rest === '' ? undefined : rest.slice(1);
    if (!host.includes(':')) return null;
  } else if (s.indexOf(':') !== s.lastIndexOf(':')) {
    host = s; // a bare IPv6 address: no port
  } else {
    const colon = s.indexOf(':');
    host = colon === -1 ? s : s.slice(0, colon);
    portText = colon === -1 ? undefined : s.slice(colon + 1);
  }
  if (portText === undefined) {
    if (opts.defaultPort === undefined) return null;
    return host === '' ? null : { host, port: opts.defaultPort };
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !opts.allowZeroPort)) return null;
  return { host, port };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Who may talk to the dashboard's loopback HTTP listener (`meshd ui`).
 *
 * `meshd ui` asks the daemon over its control socket (mode 0600) for a one-time code: 32 random
 * bytes, valid for a few minutes, printed inside the URL's fragment (never sent to the server in
 * a request line, a log or a Referer). The page posts it once to `/api/login`, which spends it
 * and answers with a session token (32 more random bytes) in an HttpOnly, SameSite=Strict
 * cookie. Every API and event-stream request without a live session token gets 401.
 *
 * Requests whose Host is not this listener's loopback address are refused (DNS rebinding: a page
 * on evil.example whose name now resolves to 127.0.0.1 sends `Host: evil.example`), and so are
 * state-changing requests whose Origin is not the dashboard's own (CSRF).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a code printed by `meshd ui` may be exchanged for a session. */
export const UI_CODE_TTL_MS = 5 * 60_000;
/** How long a session lasts without a request. */
export const UI_SESSION_IDLE_MS = 12 * 3_600_000;
/** At most this many codes and sessions are kept; the oldest goes first. */
const MAX_CODES = 16;
const MAX_SESSIONS = 32;
const TOKEN_BYTES = 32;

function token(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Codes and sessions of one dashboard listener (nothing global: one per daemon). */
export class UiAuth {
  private readonly codes = new Map<string, number>(); // code → expiry (ms)
  private readonly sessions = new Map<string, number>(); // token → last use (ms)

  constructor(private readonly now: () => number = Date.now) {}

  /** A fresh one-time code for `meshd ui`. */
  issueCode(): string {
    this.prune();
    const code = token();
    this.codes.set(code, this.now() + UI_CODE_TTL_MS);
    while (this.codes.size > MAX_CODES) this.codes.delete(this.codes.keys().next().value!);
    return code;
  }

  /** Spend a code: a session token, or null when the code is unknown, used or expired. */
  exchange(code: unknown): string | null {
    this.prune();
    if (typeof code !== 'string' || code.length === 0 || code.length > 100) return null;
    for (const [c, expires] of this.codes) {
      if (!sameToken(c, code)) continue;
      this.codes.delete(c);
      if (expires <= this.now()) return null;
      const t = token();
      this.sessions.set(t, this.now());
      while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
      return t;
    }
    return null;
  }

  /** Is `t` a live session token? (Refreshes its idle time.) */
  check(t: string | undefined): boolean {
    if (t === undefined || t.length === 0 || t.length > 100) return false;
    this.prune();
    for (const s of this.sessions.keys()) {
      if (sameToken(s, t)) {
        this.sessions.set(s, this.now());
        return true;
      }
    }
    return false;
  }

  /** Sessions and codes alive now (for status and tests). */
  counts(): { codes: number; sessions: number } {
    this.prune();
    return { codes: this.codes.size, sessions: this.sessions.size };
  }

  private prune(): void {
    const now = this.now();
    for (const [c, expires] of this.codes) if (expires <= now) this.codes.delete(c);
    for (const [t, used] of this.sessions) if (now - used > UI_SESSION_IDLE_MS) this.sessions.delete(t);
  }
}

/** The cookie that carries a session token (one name per listener: ports share cookies). */
export function sessionCookieName(port: number): string {
  return `meshd_ui_${port}`;
}

/** A cookie's value from a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The Host values this listener answers to: its loopback address and `localhost`. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

/**
 * Why a request must be refused before anything else, or null when it may go on: a Host that
 * is not this listener (DNS rebinding), or — for requests that change something, or that carry
 * an Origin — an Origin that is not the dashboard's own (CSRF).
 */
export function refuseRequest(port: number, method: string, headers: { host?: string | undefined; origin?: string | undefined; 'sec-fetch-site'?: string | string[] | undefined }): string | null {
  const hosts = allowedHosts(port);
  if (headers.host === undefined || !hosts.includes(headers.host.toLowerCase())) return 'unexpected Host header';
  const origin = headers.origin;
  const changes = method !== 'GET' && method !== 'HEAD';
  if (origin !== undefined || changes) {
    if (origin === undefined || !hosts.map((h) => `http://${h}`).includes(origin.toLowerCase())) return 'unexpected Origin header';
  }
  const site = headers['sec-fetch-site'];
  if (changes && site !== undefined && site !== 'same-origin') return 'cross-site request';
  return null;
}

/**
 * Error classes with stable, machine-readable codes. Every failure a user can meet is one of
 * these; the CLI prints `message` (plus `hint` when there is one) on one line and exits 1.
 */
export const ERROR_CODES = [
  'E_USAGE',
  'E_STATE_CORRUPT',
  'E_STATE_IO',
  'E_NO_IDENTITY',
  'E_PROFILE',
  'E_DID_INVALID',
  'E_DID_RESOLVE',
  'E_DWN_UNREACHABLE',
  'E_DWN_REJECTED',
  'E_DWN_TIMEOUT',
  'E_DWN_MESSAGE',
  'E_NOT_OWNER',
  'E_NO_NETWORK',
  'E_NETWORK_AMBIGUOUS',
  'E_RECORD_INVALID',
  'E_DECRYPT',
  'E_ACL_INVALID',
  'E_ENGINE',
  'E_TUN',
  'E_NATIVE',
  'E_RELAY',
  'E_DNS',
  'E_DAEMON',
  'E_DAEMON_RUNNING',
  'E_NO_DAEMON',
  'E_WRONG_PROFILE',
  'E_CONFIG_INVALID',
  'E_TIMEOUT',
  'E_LAB',
  'E_PEER_UNKNOWN',
  'E_PEER_REMOVED',
  'E_PEER_OFFLINE',
  'E_ACL_DENIED',
  'E_CHECK_FAILED',
  'E_ROUTING',
  'E_UI',
  'E_PREFIX_INVALID',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODES: ReadonlySet<string> = new Set<string>(ERROR_CODES);

/** `code` when it is one of ours (e.g. from the daemon's answer), else `fallback`. */
export function errorCodeOr(code: unknown, fallback: ErrorCode): ErrorCode {
  return typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : fallback;
}

export class MeshdError extends Error {
  readonly code: ErrorCode;
  /** What the user should run or check next, shown after the message. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { hint?: string | undefined; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options?.hint;
  }
}

/** Bad command-line usage: exit code 2. */
export class UsageError extends MeshdError {
  constructor(message: string, options?: { hint?: string | undefined }) {
    super('E_USAGE', message, options);
  }
}

/** A state file exists but cannot be read or parsed. Never replaced silently. */
export class StateError extends MeshdError {
  readonly file: string;
  constructor(code: 'E_STATE_CORRUPT' | 'E_STATE_IO', file: string, message: string, options?: { hint?: string | undefined; cause?: unknown }) {
    super(code, message, options);
    this.file = file;
  }
}

export class DidError extends MeshdError {
  constructor(code: 'E_DID_INVALID' | 'E_DID_RESOLVE', message: string, options?: { hint?: string | undefined; cause?: unknown }) {
    super(code, message, options);
  }
}

/** An error from a DWN, carrying the server's status code and detail when there is one. */
export class DwnError extends MeshdError {
  readonly status: number | undefined;
  readonly detail: string | undefined;
  constructor(
    code: 'E_DWN_UNREACHABLE' | 'E_DWN_REJECTED' | 'E_DWN_TIMEOUT',
    message: string,
    options?: { status?: number | undefined; detail?: string | undefined; hint?: string | undefined; cause?: unknown },
  ) {
    super(code, message, options);
    this.status = options?.status;
    this.detail = options?.detail;
  }
}

/** A DWN message cannot be built from the given input (refused before anything is sent). */
export class DwnMessageError extends MeshdError {
  constructor(message: string, options?: { hint?: string | undefined; cause?: unknown }) {
    super('E_DWN_MESSAGE', message, options);
  }
}

/**
 * Text that is not an IP prefix (util/prefix). `reason` says which part is wrong; callers that
 * own the input (a policy file, a flag) usually rethrow it under their own code with their hint.
 */
export class PrefixError extends MeshdError {
  readonly reason: 'not-text' | 'address' | 'length' | 'host-bits';
  constructor(reason: PrefixError['reason'], message: string) {
    super('E_PREFIX_INVALID', message, { hint: 'use an address or prefix like 10.200.0.0/16, 10.200.3.7, fd0d:e100:d3c5::/48' });
    this.reason = reason;
  }
}

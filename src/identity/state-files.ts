/**
 * State on disk: private directories (0700), private files (0600), atomic writes (temp file,
 * fsync, rename, fsync of the directory) and strict reads that never turn a damaged file into
 * a silent fresh start.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, chmodSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { StateError } from '../errors.js';

/** Create `path` (and parents) as a directory only its owner can enter; tighten it if it exists. */
export function ensurePrivateDir(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(path, e, 'cannot access');
  }
  if (st && !st.isDirectory()) {
    throw new StateError('E_STATE_IO', path, `${path} is not a directory`, { hint: 'choose another --home' });
  }
  if (!st) {
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw ioError(path, e, 'cannot create directory');
    }
  }
  try {
    if (((st?.mode ?? 0o700) & 0o777) !== 0o700 || !st) chmodSync(path, 0o700);
  } catch (e) {
    throw ioError(path, e, 'cannot set permissions on');
  }
}

/** Write a file atomically: temp file in the same directory, fsync, rename over, fsync dir. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', mode);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw ioError(path, e, 'cannot write');
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // fsync of a directory is best effort (not supported on every filesystem)
  }
}

/** Read a JSON file: undefined when it does not exist, StateError when unreadable or corrupt. */
export function readJsonFile<T = unknown>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(path, e, 'cannot read');
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new StateError('E_STATE_CORRUPT', path, `state file ${path} is corrupt (not valid JSON)`, {
      hint: 'restore it from a backup or remove it deliberately',
    });
  }
}

export function writeJsonFile(path: string, value: unknown, mode = 0o600): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', mode);
}

function ioError(path: string, e: unknown, what: string): StateError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new StateError('E_STATE_IO', path, `${what} ${path} (${code})`, {
    cause: e,
    hint: code === 'EACCES' || code === 'EPERM' ? 'check permissions or choose another --home' : undefined,
  } as { hint?: string; cause?: unknown });
}

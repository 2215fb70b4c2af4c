/**
 * A small structural validator for record contents (JSON-Schema-like, hand-written so the
 * errors are ours). `write` mode rejects unknown fields; `read` mode drops them, so a newer
 * peer's extra fields do not make its record unreadable. Failures are MeshdError
 * E_RECORD_INVALID naming the field.
 */
import { MeshdError } from '../errors.js';

export type Mode = 'write' | 'read';
export type Check<T> = (v: unknown, path: string, mode: Mode) => T;

interface OptionalCheck<T> {
  optional: true;
  check: Check<T>;
}

type Field = Check<unknown> | OptionalCheck<unknown>;
type Shape = Record<string, Field>;
type Out<S extends Shape> = {
  [K in keyof S as S[K] extends OptionalCheck<unknown> ? never : K]: S[K] extends Check<infer T> ? T : never;
} & {
  [K in keyof S as S[K] extends OptionalCheck<unknown> ? K : never]?: S[K] extends OptionalCheck<infer T> ? T : never;
};

export function invalid(path: string, why: string): MeshdError {
  return new MeshdError('E_RECORD_INVALID', `${path || 'record'}: ${why}`);
}

export function optional<T>(check: Check<T>): OptionalCheck<T> {
  return { optional: true, check };
}

export function object<S extends Shape>(shape: S): Check<Out<S>> {
  return (v, path, mode) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(path, 'must be an object');
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, f] of Object.entries(shape)) {
      const p = path ? `${path}.${k}` : k;
      const has = Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined;
      if (typeof f === 'function') {
        if (!has) throw invalid(p, 'is required');
        out[k] = f(o[k], p, mode);
      } else if (has) {
        out[k] = f.check(o[k], p, mode);
      }
    }
    if (mode === 'write') {
      for (const k of Object.keys(o)) {
        if (!Object.prototype.hasOwnProperty.call(shape, k)) throw invalid(path ? `${path}.${k}` : k, 'is not a known field');
      }
    }
    return out as Out<S>;
  };
}

export function string(opts: { min?: number; max: number; pattern?: RegExp; test?: (s: string) => boolean; what?: string }): Check<string> {
  return (v, path) => {
    if (typeof v !== 'string') throw invalid(path, 'must be a string');
    if (v.length < (opts.min ?? 0)) throw invalid(path, opts.min === 1 ? 'must not be empty' : `must have at least ${opts.min} characters`);
    if (v.length > opts.max) throw invalid(path, `must have at most ${opts.max} characters`);
    if (opts.pattern && !opts.pattern.test(v)) throw invalid(path, `is not ${opts.what ?? 'valid'}`);
    if (opts.test && !opts.test(v)) throw invalid(path, `is not ${opts.what ?? 'valid'}`);
    return v;
  };
}

export function integer(opts: { min: number; max: number }): Check<number> {
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(path, 'must be an integer');
    if (v < opts.min || v > opts.max) throw invalid(path, `must be between ${opts.min} and ${opts.max}`);
    return v;
  };
}

export function number(opts: { min: number; max: number }): Check<number> {
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(path, 'must be a number');
    if (v < opts.min || v > opts.max) throw invalid(path, `must be between ${opts.min} and ${opts.max}`);
    return v;
  };
}

export function boolean(): Check<boolean> {
  return (v, path) => {
    if (typeof v !== 'boolean') throw invalid(path, 'must be true or false');
    return v;
  };
}

export function oneOf<const T extends string>(values: readonly T[]): Check<T> {
  return (v, path) => {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw invalid(path, `must be one of ${values.join(', ')}`);
    return v as T;
  };
}

export function array<T>(item: Check<T>, opts: { max: number; min?: number; unique?: boolean }): Check<T[]> {
  return (v, path, mode) => {
    if (!Array.isArray(v)) throw invalid(path, 'must be an array');
    if (v.length < (opts.min ?? 0)) throw invalid(path, `must have at least ${opts.min} items`);
    if (v.length > opts.max) throw invalid(path, `must have at most ${opts.max} items`);
    const out = v.map((x, i) => item(x, `${path}[${i}]`, mode));
    if (opts.unique && new Set(out.map((x) => JSON.stringify(x))).size !== out.length) throw invalid(path, 'must not repeat items');
    return out;
  };
}

export function record<T>(key: Check<string>, value: Check<T>, opts: { max: number }): Check<Record<string, T>> {
  return (v, path, mode) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(path, 'must be an object');
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length > opts.max) throw invalid(path, `must have at most ${opts.max} entries`);
    const out: Record<string, T> = Object.create(null) as Record<string, T>;
    for (const [k, x] of entries) {
      key(k, `${path} key "${k.slice(0, 40)}"`, mode);
      out[k] = value(x, `${path}.${k}`, mode);
    }
    return out;
  };
}

/** Apply a check and map its output (normalisation, cross-field checks). */
export function map<A, B>(check: Check<A>, f: (a: A, path: string) => B): Check<B> {
  return (v, path, mode) => f(check(v, path, mode), path);
}

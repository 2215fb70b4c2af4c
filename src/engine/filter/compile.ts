/**
 * FilterSpec (JSON-friendly, built by the control plane) → CompiledFilter (plain data with parsed
 * prefixes and port ranges). Validates everything and throws MeshdError('E_ACL_INVALID') naming
 * the rule and field at fault; never runs on the packet path.
 */
import { MeshdError } from '../../errors.js';
import { parsePrefix } from './cidr.js';
import type { CompiledFilter, CompiledRule, FilterAction, FilterProto, FilterRuleSpec, FilterSpec, PortRange, Prefix } from './types.js';

const PROTOS: readonly FilterProto[] = ['tcp', 'udp', 'icmp', '*'];
const RULE_FIELDS = new Set(['action', 'srcPeers', 'srcCidrs', 'dstCidrs', 'proto', 'dstPorts', 'srcPorts']);

function fail(where: string, what: string): never {
  throw new MeshdError('E_ACL_INVALID', `${where}: ${what}`);
}

function parsePortNumber(s: string, where: string): number {
  if (s.length === 0 || s.length > 5) fail(where, `invalid port "${s}"`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) fail(where, `invalid port "${s}"`);
  }
  if (s.length > 1 && s[0] === '0') fail(where, `invalid port "${s}" (leading zero)`);
  const n = Number(s);
  if (n > 65535) fail(where, `port ${s} out of range (0-65535)`);
  return n;
}

/** "22" → [22, 22]; "8000-9000" → [8000, 9000]; "*" → null (any port). */
export function parsePortRange(text: string, where = 'port'): PortRange | null {
  if (typeof text !== 'string') fail(where, `port must be a string like "22" or "8000-9000"`);
  if (text === '*') return null;
  const dash = text.indexOf('-');
  if (dash === -1) {
    const n = parsePortNumber(text, where);
    return [n, n];
  }
  const lo = parsePortNumber(text.slice(0, dash), where);
  const hi = parsePortNumber(text.slice(dash + 1), where);
  if (lo > hi) fail(where, `port range "${text}" is reversed`);
  return [lo, hi];
}

function compilePorts(list: unknown, where: string): readonly PortRange[] | null {
  if (list === undefined) return null;
  if (!Array.isArray(list)) fail(where, 'must be an array of strings like "22" or "8000-9000"');
  if (list.length === 0) fail(where, 'must not be empty (omit it to mean any port)');
  const out: PortRange[] = [];
  for (const item of list as unknown[]) {
    const r = parsePortRange(item as string, where);
    if (r === null) return null; // "*" anywhere in the list: any port
    out.push(r);
  }
  return out;
}

function compilePrefixes(list: unknown, where: string): Prefix[] {
  if (!Array.isArray(list)) fail(where, 'must be an array of address or prefix strings');
  const out: Prefix[] = [];
  for (const item of list as unknown[]) {
    try {
      out.push(parsePrefix(item as string));
    } catch (e) {
      if (e instanceof MeshdError) fail(where, e.message);
      throw e;
    }
  }
  return out;
}

/** A WireGuard public key: 32 bytes in standard base64 (44 characters, one '=' of padding). */
export function isWireGuardKeyBase64(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== 44 || s[43] !== '=') return false;
  for (let i = 0; i < 43; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
    if (!ok) return false;
  }
  // The last character before '=' carries 4 data bits + 2 zero bits: A, E, I, ..., w, 0, 4, 8.
  return 'AEIMQUYcgkosw048'.includes(s[42]!);
}

function compileRule(r: FilterRuleSpec, i: number): CompiledRule {
  const where = `rule ${i}`;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) fail(where, 'must be an object');
  for (const k of Object.keys(r)) if (!RULE_FIELDS.has(k)) fail(where, `unknown field "${k}"`);
  const action = r.action as unknown;
  if (action !== 'accept' && action !== 'drop') fail(`${where}.action`, 'must be "accept" or "drop"');
  const proto = (r.proto ?? '*') as FilterProto;
  if (!PROTOS.includes(proto)) fail(`${where}.proto`, 'must be "tcp", "udp", "icmp" or "*"');

  let srcPeers: ReadonlySet<string> | '*';
  let srcCidrs: Prefix[] = [];
  if (r.srcPeers === '*' || (r.srcPeers === undefined && r.srcCidrs === undefined)) {
    // '*' absorbs any srcCidrs (a union with everything is everything), but they must still parse.
    if (r.srcCidrs !== undefined) compilePrefixes(r.srcCidrs, `${where}.srcCidrs`);
    srcPeers = '*';
  } else {
    const peers = new Set<string>();
    if (r.srcPeers !== undefined) {
      if (!Array.isArray(r.srcPeers)) fail(`${where}.srcPeers`, 'must be "*" or an array of WireGuard public keys');
      for (const k of r.srcPeers as unknown[]) {
        if (!isWireGuardKeyBase64(k)) fail(`${where}.srcPeers`, `"${String(k)}" is not a base64 WireGuard public key`);
        peers.add(k);
      }
    }
    srcPeers = peers;
    if (r.srcCidrs !== undefined) srcCidrs = compilePrefixes(r.srcCidrs, `${where}.srcCidrs`);
  }

  const dstCidrs = r.dstCidrs === undefined || r.dstCidrs === '*' ? '*' : compilePrefixes(r.dstCidrs, `${where}.dstCidrs`);
  const dstPorts = compilePorts(r.dstPorts, `${where}.dstPorts`);
  const srcPorts = compilePorts(r.srcPorts, `${where}.srcPorts`);
  if (proto === 'icmp' && (dstPorts !== null || srcPorts !== null)) fail(where, 'ICMP has no ports');
  return { action, proto, srcPeers, srcCidrs, dstCidrs, dstPorts, srcPorts };
}

/** Validate and compile a FilterSpec. Throws MeshdError('E_ACL_INVALID'). */
export function compileFilter(spec: FilterSpec): CompiledFilter {
  if (spec === null || typeof spec !== 'object') fail('filter', 'must be an object');
  for (const k of Object.keys(spec)) if (k !== 'defaultAction' && k !== 'rules') fail('filter', `unknown field "${k}"`);
  const defaultAction = (spec.defaultAction ?? 'drop') as FilterAction;
  if (defaultAction !== 'accept' && defaultAction !== 'drop') fail('filter.defaultAction', 'must be "accept" or "drop"');
  if (!Array.isArray(spec.rules)) fail('filter.rules', 'must be an array');
  return { defaultAction, rules: spec.rules.map(compileRule) };
}

/** `acl set FILE` and `acl show` as functions. */
import { readFileSync } from 'node:fs';
import { MeshdError } from '../errors.js';
import { compileAcl, parseAclPolicy, type CompiledFilter } from './acl.js';
import { activeNodes, currentPolicy } from './model.js';
import { wireguardKeyOf } from './netmap.js';
import type { AclPolicyRecord } from './records.js';
import { NetworkSession, requireOwner, type ControlContext } from './session.js';

/**
 * A policy file. Without a "version" the policy gets the next version when it is set
 * (`bump`); with one, that version must be newer than the current policy's.
 */
export function readPolicyFile(path: string): { policy: AclPolicyRecord; bump: boolean } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MeshdError('E_ACL_INVALID', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let bump = false;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && !('version' in v)) {
      bump = true;
      text = JSON.stringify({ ...v, version: 1 });
    }
  } catch {
    // parseAclPolicy says what is wrong
  }
  return { policy: parseAclPolicy(text), bump };
}

export interface AclSetResult {
  version: number;
  previousVersion: number | null;
  rules: number;
}

/** Replace the network's policy. Its version must be greater than the current one (`bump`: it is made so). */
export async function setAcl(ctx: ControlContext, given: AclPolicyRecord, o: { bump?: boolean } = {}): Promise<AclSetResult> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'set the ACL policy');
    await s.load(['network', 'aclPolicy']);
    const epoch = s.network().data.epoch;
    const current = currentPolicy(s.set, s.joined.networkId, s.joined.anchor);
    const policy = o.bump && current ? { ...given, version: Math.max(given.version, current.data.version + 1) } : given;
    if (current && policy.version <= current.data.version) {
      throw new MeshdError('E_ACL_INVALID', `policy version ${policy.version} is not newer than the current version ${current.data.version}`, {
        hint: `set "version" to ${current.data.version + 1} or more`,
      });
    }
    if (current) await s.update(current, policy, s.recipients(epoch));
    else await s.writeNew('aclPolicy', policy, { parentContextId: s.joined.networkId, recipients: s.recipients(epoch) });
    return { version: policy.version, previousVersion: current?.data.version ?? null, rules: policy.rules.length };
  } finally {
    await s.close();
  }
}

export interface AclShowResult {
  policy: AclPolicyRecord | null;
  compiled: CompiledFilter;
}

export async function showAcl(ctx: ControlContext): Promise<AclShowResult> {
  const s = await NetworkSession.open(ctx);
  try {
    await s.load(s.role === 'owner' ? ['network', 'node', 'aclPolicy'] : ['keyDelivery', 'network', 'node', 'aclPolicy']);
    const net = s.network();
    const policy = currentPolicy(s.set, s.joined.networkId, s.joined.anchor)?.data ?? null;
    const nodes = activeNodes(s.set, s.joined.networkId, s.joined.anchor, net.data.meshCIDR, Date.now()).active.map((a) => ({
      did: a.record.data.did,
      owner: a.record.data.owner,
      wireguardKey: wireguardKeyOf(a.record.data.did),
      meshIPs: [a.record.data.meshIP, a.record.data.meshIP6],
    }));
    return { policy, compiled: compileAcl(policy ?? undefined, nodes) };
  } finally {
    await s.close();
  }
}

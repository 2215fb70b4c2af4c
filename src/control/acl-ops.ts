/** `acl set FILE` and `acl show` as functions. */
import { readFileSync } from 'node:fs';
import { MeshdError } from '../errors.js';
import { compileAcl, parseAclPolicy, type CompiledFilter } from './acl.js';
import { activeNodes, currentPolicy } from './model.js';
import { wireguardKeyOf } from './netmap.js';
import type { AclPolicyRecord } from './records.js';
import { NetworkSession, requireOwner, type ControlContext } from './session.js';

export function readPolicyFile(path: string): AclPolicyRecord {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MeshdError('E_ACL_INVALID', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseAclPolicy(text);
}

export interface AclSetResult {
  version: number;
  previousVersion: number | null;
  rules: number;
}

/** Replace the network's policy. Its version must be greater than the current one. */
export async function setAcl(ctx: ControlContext, policy: AclPolicyRecord): Promise<AclSetResult> {
  const s = await NetworkSession.open(ctx);
  try {
    requireOwner(s, 'set the ACL policy');
    await s.load(['network', 'aclPolicy']);
    const epoch = s.network().data.epoch;
    const current = currentPolicy(s.set, s.joined.networkId, s.joined.anchor);
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

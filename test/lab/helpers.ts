/**
 * Thin node:test glue for the lab (src/lab): a lab per test, closed by the test's `after` hook
 * (and by the lab's own exit guard should the process die first).
 */
import type { TestContext } from 'node:test';
import { Lab, natLab, pidAlive, twoHostsDirect, type LabOptions, type NatLab, type NatSpec, type TwoHosts } from '../../src/lab/index.js';
import type { Prereq } from '../helpers/prereqs.js';

/** What every namespace test needs. */
export const LAB_PREREQS: Prereq[] = ['root', 'netns', 'ip', 'iptables'];

export async function labFor(t: TestContext, opts?: LabOptions): Promise<Lab> {
  const lab = await Lab.create(opts);
  t.after(() => lab.close());
  return lab;
}

export async function twoHostsFor(t: TestContext): Promise<TwoHosts> {
  const net = await twoHostsDirect();
  t.after(() => net.close());
  return net;
}

export async function natLabFor(t: TestContext, spec: { a: NatSpec; b: NatSpec }): Promise<NatLab> {
  const net = await natLab(spec);
  t.after(() => net.close());
  return net;
}

/** True when no process has this pid any more (a zombie counts as gone). */
export function processGone(pid: number): boolean {
  return !pidAlive(pid);
}

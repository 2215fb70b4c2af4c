/** `meshd network dns`: the owner sets the network's DNS suffix and name servers (in the network record). */
import { validateRecord, type NetworkRecord } from './records.js';
import { NetworkSession, requireOwner, type ControlContext } from './session.js';

export interface DnsSettingsChange {
  /** A new suffix; null removes it (peers then use `<network name>.internal`). Absent: unchanged. */
  suffix?: string | null | undefined;
  /** Name servers for names outside the mesh; [] removes them. Absent: unchanged. */
  servers?: string[] | undefined;
}

export interface DnsSettings {
  suffix: string | null;
  servers: string[];
  changed: boolean;
}

function settingsOf(n: NetworkRecord): { suffix: string | null; servers: string[] } {
  return { suffix: n.magicDNSSuffix ?? null, servers: n.dnsServers ?? [] };
}

/** Shows (no change given) or changes the network's DNS settings; a change is validated like any record. */
export async function networkDns(ctx: ControlContext, change: DnsSettingsChange): Promise<DnsSettings> {
  const s = await NetworkSession.open(ctx);
  try {
    await s.load(['network']);
    const net = s.network();
    const before = settingsOf(net.data);
    if (change.suffix === undefined && change.servers === undefined) return { ...before, changed: false };
    requireOwner(s, 'change the network DNS settings');
    const next: NetworkRecord = { ...net.data };
    if (change.suffix !== undefined) {
      if (change.suffix === null) delete next.magicDNSSuffix;
      else next.magicDNSSuffix = change.suffix.replace(/\.$/, '').toLowerCase();
    }
    if (change.servers !== undefined) {
      if (change.servers.length === 0) delete next.dnsServers;
      else next.dnsServers = change.servers;
    }
    const valid = validateRecord('network', next, 'write');
    const after = settingsOf(valid);
    if (JSON.stringify(after) === JSON.stringify(before)) return { ...after, changed: false };
    await s.update(net, valid, s.recipients(valid.epoch));
    return { ...after, changed: true };
  } finally {
    await s.close();
  }
}

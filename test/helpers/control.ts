/** Waiting on a real control client's network maps. */
import type { ControlClient } from '../../src/control/control-client.js';
import type { NetworkMap } from '../../src/control/netmap.js';

/** Resolve with the first map (current or coming) that satisfies `pred`; reject after `timeoutMs`. */
export function waitForMap(client: ControlClient, pred: (m: NetworkMap) => boolean, timeoutMs: number): Promise<NetworkMap> {
  return new Promise((resolve, reject) => {
    if (client.map && pred(client.map)) return resolve(client.map);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`condition not met within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on((e) => {
      if (e.type === 'map' && pred(e.map)) {
        clearTimeout(timer);
        off();
        resolve(e.map);
      }
    });
  });
}

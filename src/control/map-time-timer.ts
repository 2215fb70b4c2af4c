/**
 * One timer for the moment the current map next changes with time alone (a peer's online flag
 * flips, a node expires: map-time.ts). Nothing periodic: an idle map with N peers costs nothing
 * until then, and a heartbeat that touched a few peers moves the timer only when one of theirs
 * comes sooner.
 */
import { expiryDue, nextTimeChange, peerTimeChange } from './map-time.js';
import type { MapPeer, NetworkMap } from './netmap.js';

export interface MapTimeHost {
  /** The map the timer is for, when time may change it (a map from the DWN, not stopped or revoked). */
  liveMap(): NetworkMap | undefined;
  now(): number;
  /** The map's time came: `expired` when a node reached its expiry (a rebuild), else online flags moved. */
  due(map: NetworkMap, expired: boolean, now: number): void;
}

export class MapTimeTimer {
  private timer: NodeJS.Timeout | undefined;
  /**
   * When the timer fires (wall-clock ms; Infinity: never): no later than the current map's next
   * time change. Undefined: not known, every peer must be looked at.
   */
  private at: number | undefined;

  constructor(private readonly host: MapTimeHost) {}

  /** The map changed; `touched`: only these peers changed since the one before. */
  schedule(touched?: readonly MapPeer[]): void {
    const m = this.host.liveMap();
    const now = this.host.now();
    if (touched && this.at !== undefined && m) {
      // only the touched peers changed: the others' next changes are where they were, so the
      // timer stays unless a touched peer's comes sooner (one whose change moved later leaves
      // the timer early: it then finds nothing to change and looks at every peer again)
      let next = this.at;
      for (const p of touched) next = Math.min(next, peerTimeChange(p, now));
      if (next < this.at) this.arm(next, now);
      return;
    }
    this.stop();
    if (m) this.arm(nextTimeChange(m, now), now);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = undefined;
  }

  private arm(next: number, now: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = next;
    if (next === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.at = undefined;
      const cur = this.host.liveMap();
      if (!cur) return;
      const t = this.host.now();
      this.host.due(cur, expiryDue(cur, t), t);
      if (this.timer === undefined) this.schedule();
    }, Math.min(2 ** 31 - 1, Math.max(0, next - now)));
    this.timer.unref();
  }
}

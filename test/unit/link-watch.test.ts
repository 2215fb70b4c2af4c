/**
 * The agent's link watcher against a manual clock and a fake event source: with events it
 * compares the addresses once per burst and otherwise only on its slow backstop (an idle daemon
 * does not wake every second); without a source, or once the source dies, it polls every second.
 * The real `ip monitor` is tried in test/lab/link-monitor.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/util/clock.js';
import { LINK_BACKSTOP_MS, LINK_POLL_MS, LINK_SETTLE_MS, LinkWatcher, type LinkMonitor } from '../../src/daemon/link-watch.js';

class FakeMonitor implements LinkMonitor {
  event: () => void = () => {};
  exit: (why: string) => void = () => {};
  stopped = false;
  onEvent(cb: () => void): void {
    this.event = cb;
  }
  onExit(cb: (why: string) => void): void {
    this.exit = cb;
  }
  stop(): void {
    this.stopped = true;
  }
}

function setup(monitor: FakeMonitor | null) {
  const clock = new ManualClock();
  let addrs = new Set(['eth0/192.0.2.1']);
  const changes: Array<{ addresses: string[]; lost: string[] }> = [];
  let reads = 0;
  const w = new LinkWatcher({
    addresses: () => {
      reads++;
      return new Set(addrs);
    },
    onChange: (a, lost) => changes.push({ addresses: [...a], lost }),
    monitor: () => monitor,
    clock,
  });
  return {
    clock,
    w,
    changes,
    set: (xs: string[]) => void (addrs = new Set(xs)),
    reads: () => reads,
  };
}

describe('link watcher', () => {
  test('with events: no reads while nothing happens but the backstop; a burst of events is one comparison', () => {
    const m = new FakeMonitor();
    const s = setup(m);
    assert.equal(s.w.eventDriven, true);
    const start = s.reads();
    s.clock.advance(10 * 60_000);
    // the check at LINK_POLL_MS after start, then one per backstop period: not one a second
    assert.equal(s.reads() - start, 1 + Math.floor((10 * 60_000) / LINK_BACKSTOP_MS));
    s.set(['eth0/192.0.2.9']);
    const before = s.reads();
    m.event(); // address deleted
    s.clock.advance(50);
    m.event(); // address added
    s.clock.advance(50);
    m.event(); // link flaps
    assert.deepEqual(s.changes, [], 'nothing until the burst settles');
    s.clock.advance(LINK_SETTLE_MS);
    assert.equal(s.reads() - before, 1, 'one comparison for the burst');
    assert.deepEqual(s.changes, [{ addresses: ['eth0/192.0.2.9'], lost: ['eth0/192.0.2.1'] }]);
    m.event(); // an event that changes nothing the agent sees
    s.clock.advance(LINK_SETTLE_MS);
    assert.equal(s.changes.length, 1);
    s.w.stop();
    assert.equal(m.stopped, true);
    s.set(['eth0/192.0.2.10']);
    m.event();
    s.clock.advance(LINK_BACKSTOP_MS * 2);
    assert.equal(s.changes.length, 1, 'nothing after stop');
  });

  test('without a monitor, or once it exits, the addresses are polled every second', () => {
    const p = setup(null);
    assert.equal(p.w.eventDriven, false);
    const r0 = p.reads();
    p.clock.advance(5 * LINK_POLL_MS);
    assert.equal(p.reads() - r0, 5);
    p.set(['wlan0/198.51.100.4']);
    p.clock.advance(LINK_POLL_MS);
    assert.deepEqual(p.changes, [{ addresses: ['wlan0/198.51.100.4'], lost: ['eth0/192.0.2.1'] }]);
    p.w.stop();

    const m = new FakeMonitor();
    const s = setup(m);
    s.clock.advance(LINK_POLL_MS); // the start-up check
    m.exit('ip monitor exited (1)');
    assert.equal(s.w.eventDriven, false);
    s.set(['eth0/192.0.2.77']);
    s.clock.advance(LINK_POLL_MS);
    assert.deepEqual(s.changes, [{ addresses: ['eth0/192.0.2.77'], lost: ['eth0/192.0.2.1'] }], 'picked up by the poll within a second');
    s.w.stop();
  });
});

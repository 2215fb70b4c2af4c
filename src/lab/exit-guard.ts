/**
 * Runs synchronous clean-up functions on every way out of the process: normal exit, an uncaught
 * exception (both end in 'exit'), SIGINT, SIGTERM and SIGHUP. On a signal the clean-ups run, then
 * the signal is raised again with our handler removed, so the process ends as it would have
 * (exit status 128 + signal) unless someone else handles that signal too.
 *
 * The set of registered clean-ups is the one piece of process-wide state of the lab: exit hooks
 * are process-wide by nature. Listeners are installed with the first registration and removed
 * with the last.
 */
const cleanups = new Set<() => void>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

function runAll(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      /* keep going: every other clean-up must still run */
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  uninstall();
  process.kill(process.pid, sig);
}

const onExit = (): void => runAll();
const signalHandlers = new Map<NodeJS.Signals, () => void>(SIGNALS.map((s) => [s, () => onSignal(s)]));

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const [sig, h] of signalHandlers) process.on(sig, h);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.removeListener('exit', onExit);
  for (const [sig, h] of signalHandlers) process.removeListener(sig, h);
}

/** Registers `fn` to run on exit; returns a function that unregisters it (without running it). */
export function onProcessExit(fn: () => void): () => void {
  cleanups.add(fn);
  install();
  return () => {
    cleanups.delete(fn);
    if (cleanups.size === 0) uninstall();
  };
}

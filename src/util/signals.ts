/**
 * The one "run until told to stop" wait of the foreground commands: resolves with the name of
 * the signal that arrived (SIGINT, SIGTERM) or 'abort' when `signal` aborts. Other signals may
 * be handled meanwhile (`on`: SIGHUP re-reads a file, SIGUSR1 prints stats). Every listener is
 * removed before the promise resolves, so a second Ctrl-C reaches Node's default handler.
 */
export interface StopWaitOptions {
  /** Stops the wait too (resolves with 'abort'). */
  signal?: AbortSignal;
  /** The signals that stop (default SIGINT and SIGTERM). */
  stopOn?: readonly NodeJS.Signals[];
  /** Signals handled while waiting, without stopping. */
  on?: Partial<Record<NodeJS.Signals, () => void>>;
}

export function waitForStop(opts: StopWaitOptions = {}): Promise<string> {
  const stopOn = opts.stopOn ?? ['SIGINT', 'SIGTERM'];
  const extra = Object.entries(opts.on ?? {}) as [NodeJS.Signals, () => void][];
  return new Promise<string>((resolve) => {
    const stop = (why: string): void => {
      for (const s of stopOn) process.off(s, onStop);
      for (const [s, fn] of extra) process.off(s, fn);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    const onStop = (sig: NodeJS.Signals): void => stop(sig);
    const onAbort = (): void => stop('abort');
    if (opts.signal?.aborted) {
      resolve('abort');
      return;
    }
    for (const s of stopOn) process.on(s, onStop);
    for (const [s, fn] of extra) process.on(s, fn);
    opts.signal?.addEventListener('abort', onAbort);
  });
}

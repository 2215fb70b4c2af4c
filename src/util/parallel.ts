/** Bounded concurrency for independent asynchronous work (DWN reads and writes). */

/** Run `fn` over `items`, at most `width` at a time; rejects with the first failure. */
export async function inParallel<T>(items: readonly T[], width: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, width), items.length) }, worker));
}

/**
 * Start `fn` over `items`, at most `width` in flight, and hand back one promise per item, in
 * order, so that the caller can consume results one by one while later ones are already on
 * their way. A rejection is the caller's to see when it awaits that item; one it never awaits
 * (it stopped at an earlier failure) is not reported as unhandled, and once an item has failed
 * no further item is started.
 */
export function prefetch<T, R>(items: readonly T[], width: number, fn: (x: T) => Promise<R>): Promise<R>[] {
  const settles: Array<{ resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  const out = items.map(
    () =>
      new Promise<R>((resolve, reject) => {
        settles.push({ resolve, reject });
      }),
  );
  for (const p of out) p.catch(() => {});
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const s = settles[i]!;
      if (failed !== undefined) {
        s.reject(failed);
        continue;
      }
      try {
        s.resolve(await fn(items[i]!));
      } catch (e) {
        failed ??= e;
        s.reject(e);
      }
    }
  };
  for (let w = 0; w < Math.min(Math.max(1, width), items.length); w++) void worker();
  return out;
}

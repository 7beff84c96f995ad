/**
 * Wait `ms` milliseconds, or less: until `signal` aborts (at once if it
 * already has) or `wake` is called. Used by every daemon loop.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  onWakeable?: (wake: () => void) => void,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    onWakeable?.(done);
  });
}

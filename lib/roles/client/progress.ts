/**
 * A one-line progress bar for long transfers, redrawn in place with "\r" at
 * most every 100 ms. The caller decides whether to show one (stderr a TTY,
 * not --json); it writes through `write` so it can be tested.
 */

export interface Progress {
  update(done: number, total?: number): void;
  /** Draw the final state and end the line. */
  finish(): void;
}

/** Bytes in binary units: "512 B", "38.1 MiB". */
export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

export function progressBar(opts: {
  label: string;
  total: number;
  write: (text: string) => void;
  width?: number;
  now?: () => number;
  intervalMs?: number;
}): Progress {
  const now = opts.now ?? (() => performance.now());
  const width = opts.width ?? 30;
  const interval = opts.intervalMs ?? 100;
  const start = now();
  let total = opts.total;
  let done = 0;
  let last = -Infinity;
  let finished = false;
  const label = opts.label.length > 30 ? "…" + opts.label.slice(-29) : opts.label;
  const draw = () => {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(frac * width);
    const secs = Math.max(0.001, (now() - start) / 1000);
    const rate = `${fmtBytes(done / secs)}/s`;
    opts.write(
      `\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
        // Floor, not round: 100% only when every byte is done.
        String(Math.floor(frac * 100)).padStart(3)}% ` +
        `${fmtBytes(done)}/${fmtBytes(total)} ${rate}\x1b[K`,
    );
  };
  return {
    update(d: number, t?: number) {
      if (finished) return;
      done = d;
      if (t !== undefined) total = t;
      const at = now();
      if (at - last >= interval) {
        last = at;
        draw();
      }
    },
    finish() {
      if (finished) return;
      finished = true;
      draw();
      opts.write("\n");
    },
  };
}

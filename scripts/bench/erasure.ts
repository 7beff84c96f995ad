/**
 * Bench section `erasure`: Reed–Solomon encode and decode at 3-of-10 and
 * 1-of-10 on 64 MiB split in 128 KiB segments (like a real upload), beside raw
 * memcpy (Uint8Array.set) of the same data measured in the same run.
 * Decode rebuilds each segment with the first two shares missing: from shares
 * 2,3,4 at 3-of-10 (data shards 0 and 1 rebuilt), from share 2 at 1-of-10.
 * Figures are MB/s of segment data (1 MB = 10^6 bytes), best of 3 rounds.
 */
import type { BenchSection } from "./sections.ts";
import { decodeSegment, encodeSegment } from "../../lib/codec/mod.ts";

const TOTAL = 64 * 1024 * 1024;
const SEGMENT = 128 * 1024;
const ROUNDS = 3;

function randomData(len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let o = 0; o < len; o += 65536) crypto.getRandomValues(out.subarray(o, o + 65536));
  return out;
}

/** Best-of-ROUNDS MB/s for `fn`, which processes `bytes` bytes per call. */
function measure(bytes: number, fn: () => void): number {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return bytes / 1e6 / (best / 1000);
}

function line(label: string, mbs: number, base?: number): void {
  const ratio = base ? `  (${(mbs / base).toFixed(3)}x memcpy)` : "";
  console.log(`${label.padEnd(44)} ${mbs.toFixed(0).padStart(7)} MB/s${ratio}`);
}

async function run(): Promise<void> {
  const data = randomData(TOTAL);
  const segments: Uint8Array[] = [];
  for (let o = 0; o < TOTAL; o += SEGMENT) segments.push(data.subarray(o, o + SEGMENT));
  console.log(
    `${TOTAL / 1024 / 1024} MiB in ${segments.length} segments of ${SEGMENT / 1024} KiB, ` +
      `best of ${ROUNDS}, one core`,
  );

  // Warm up the JIT on every path before timing anything.
  for (const [k, n] of [[3, 10], [1, 10]]) {
    for (let s = 0; s < 32; s++) {
      const sh = encodeSegment(segments[s], k, n);
      decodeSegment(sh.slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d })), k, n, SEGMENT);
    }
  }

  const dest = new Uint8Array(TOTAL);
  const memcpy = measure(TOTAL, () => {
    for (let s = 0; s < segments.length; s++) dest.set(segments[s], s * SEGMENT);
  });
  line("raw memcpy (Uint8Array.set, 128 KiB)", memcpy);

  for (const [k, n] of [[3, 10], [1, 10]]) {
    let sink = 0;
    const enc = measure(TOTAL, () => {
      for (const seg of segments) sink ^= encodeSegment(seg, k, n)[n - 1][0];
    });
    line(`encode ${k}-of-${n}`, enc, memcpy);

    // Keep only the shares the decode uses: indices 2 .. 2+k-1.
    const kept = segments.map((seg) =>
      encodeSegment(seg, k, n).slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d }))
    );
    const dec = measure(TOTAL, () => {
      for (const shares of kept) sink ^= decodeSegment(shares, k, n, SEGMENT)[0];
    });
    line(`decode ${k}-of-${n} (shares ${kept[0].map((s) => s.index).join(",")})`, dec, memcpy);
    // Correctness spot check so a broken coder can't post a fast figure.
    const back = decodeSegment(kept[7], k, n, SEGMENT);
    if (back.some((b, i) => b !== segments[7][i])) {
      throw new Error(`erasure ${k}-of-${n} decode mismatch`);
    }
    if (sink === -1) console.log(sink);
  }
  await Promise.resolve();
}

export const section: BenchSection = {
  name: "erasure",
  title: "Reed–Solomon erasure coding (GF(2^8), 64 MiB in 128 KiB segments) vs memcpy",
  run,
};

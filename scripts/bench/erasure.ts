/**
 * Bench section `erasure`: Reed–Solomon encode and decode at 3-of-10 and
 * 1-of-10 on 64 MiB split in 128 KiB segments (like a real upload), with each
 * of Shoal's kernels (WebAssembly SIMD and the TypeScript fallback), beside
 * raw memcpy (Uint8Array.set) of the same data and zfec (Tahoe-LAFS's C coder,
 * Debian's python3-zfec for /usr/bin/python3) measured in the same run.
 * Decode rebuilds each segment with the first two shares missing: from shares
 * 2,3,4 at 3-of-10 (data shards 0 and 1 rebuilt), from share 2 at 1-of-10.
 * "upload path" is erasureEncode into reused parity buffers, what
 * lib/grid/immutable.ts calls for every full segment.
 * Figures are MB/s of segment data (1 MB = 10^6 bytes), best of 3 rounds.
 */
import type { BenchSection } from "./sections.ts";
import {
  decodeSegment,
  encodeSegment,
  erasureEncode,
  type ErasureKernel,
  erasureKernel,
  useErasureKernel,
} from "../../lib/codec/mod.ts";

const TOTAL = 64 * 1024 * 1024;
const SEGMENT = 128 * 1024;
const UPLOAD_SEGMENT = 1024 * 1024;
const ROUNDS = 3;
const PYTHON = "/usr/bin/python3";

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

function line(label: string, mbs: number, notes: string[] = []): void {
  const n = notes.length ? `  (${notes.join(", ")})` : "";
  console.log(`${label.padEnd(48)} ${mbs.toFixed(0).padStart(7)} MB/s${n}`);
}

const x = (a: number, b: number | undefined, what: string) =>
  b ? [`${(a / b).toFixed(2)}x ${what}`] : [];

// ---- zfec ---------------------------------------------------------------------

/** The same workload in Python with zfec: encode 3-of-10, decode from shares 2,3,4. */
const ZFEC_SCRIPT = `
import os, sys, time, json, zfec
TOTAL, SEG, ROUNDS, k, m = ${TOTAL}, ${SEGMENT}, ${ROUNDS}, 3, 10
data = os.urandom(TOTAL)
segs = [data[o:o + SEG] for o in range(0, TOTAL, SEG)]
size = -(-SEG // k)
def split(seg):
    seg = seg + b"\\0" * (size * k - len(seg))
    return [seg[j * size:(j + 1) * size] for j in range(k)]
enc = zfec.Encoder(k, m)
dec = zfec.Decoder(k, m)
def best(fn):
    b = 1e9
    for _ in range(ROUNDS):
        t0 = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t0)
    return TOTAL / 1e6 / b
def encode_all():
    for s in segs: enc.encode(split(s))
kept = [enc.encode(split(s))[2:5] for s in segs]
def decode_all():
    for sh in kept: b"".join(dec.decode(sh, [2, 3, 4]))[:SEG]
assert b"".join(dec.decode(kept[7], [2, 3, 4]))[:SEG] == segs[7]
print(json.dumps({"version": zfec.__version__, "encode": best(encode_all), "decode": best(decode_all)}))
`;

async function haveZfec(): Promise<boolean> {
  const r = await new Deno.Command(PYTHON, { args: ["-c", "import zfec"], stderr: "null" })
    .output().catch(() => null);
  return !!r?.success;
}

/** zfec's figures, installing python3-zfec when missing and root; null (with a note) otherwise. */
async function zfecFigures(): Promise<{ version: string; encode: number; decode: number } | null> {
  if (!(await haveZfec())) {
    if (Deno.uid?.() !== 0) {
      console.log(`zfec: skipped (no zfec for ${PYTHON}; apt-get install -y python3-zfec)`);
      return null;
    }
    console.log("zfec: installing Debian's python3-zfec ...");
    await new Deno.Command("bash", {
      args: [
        "-c",
        "apt-get update -q && apt-get install -y -q --no-install-recommends python3-zfec",
      ],
      stdout: "null",
      stderr: "null",
      env: { DEBIAN_FRONTEND: "noninteractive" },
    }).output().catch(() => null);
    if (!(await haveZfec())) {
      console.log("zfec: skipped (apt-get install python3-zfec failed)");
      return null;
    }
  }
  const r = await new Deno.Command(PYTHON, { args: ["-c", ZFEC_SCRIPT], stderr: "piped" }).output();
  if (!r.success) {
    console.log(`zfec: skipped (${new TextDecoder().decode(r.stderr).trim().split("\n").pop()})`);
    return null;
  }
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

// ---- Shoal --------------------------------------------------------------------

async function run(): Promise<void> {
  const data = randomData(TOTAL);
  const segments: Uint8Array[] = [];
  for (let o = 0; o < TOTAL; o += SEGMENT) segments.push(data.subarray(o, o + SEGMENT));
  console.log(
    `${TOTAL / 1024 / 1024} MiB in ${segments.length} segments of ${SEGMENT / 1024} KiB, ` +
      `best of ${ROUNDS}, one core; default kernel here: ${erasureKernel()}`,
  );

  const zfec = await zfecFigures();
  const dest = new Uint8Array(TOTAL);
  const memcpy = measure(TOTAL, () => {
    for (let s = 0; s < segments.length; s++) dest.set(segments[s], s * SEGMENT);
  });
  line("raw memcpy (Uint8Array.set, 128 KiB)", memcpy);
  if (zfec) {
    line(`zfec ${zfec.version} encode 3-of-10`, zfec.encode, x(zfec.encode, memcpy, "memcpy"));
    line(
      `zfec ${zfec.version} decode 3-of-10 (shares 2,3,4)`,
      zfec.decode,
      x(zfec.decode, memcpy, "memcpy"),
    );
  }

  const original = erasureKernel();
  const kernels: ErasureKernel[] = original === "wasm-simd"
    ? ["wasm-simd", "typescript"]
    : ["typescript"];
  if (original !== "wasm-simd") {
    console.log("wasm-simd: skipped (no WebAssembly SIMD in this runtime)");
  }
  let sink = 0;
  try {
    for (const kernel of kernels) {
      useErasureKernel(kernel);
      for (
        const [k, n] of kernel === "typescript" || kernels.length === 1
          ? [[3, 10], [1, 10]]
          : [[3, 10]]
      ) {
        // Warm up the JIT (and wasm tier-up) on every path before timing anything.
        for (let s = 0; s < 64; s++) {
          const sh = encodeSegment(segments[s], k, n);
          decodeSegment(
            sh.slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d })),
            k,
            n,
            SEGMENT,
          );
        }
        const tag = k === 1 ? "" : ` [${kernel}]`;
        const enc = measure(TOTAL, () => {
          for (const seg of segments) sink ^= encodeSegment(seg, k, n)[n - 1][0];
        });
        const zEnc = k === 3 ? zfec?.encode : undefined;
        line(`encode ${k}-of-${n}${tag}`, enc, [
          ...x(enc, zEnc, "zfec"),
          ...x(enc, memcpy, "memcpy"),
        ]);
        if (k > 1) {
          // The upload path: 1 MiB segments (rounded to a multiple of k), parity into reused buffers.
          const size = Math.ceil(UPLOAD_SEGMENT / k);
          const count = Math.floor(TOTAL / (size * k));
          const into = Array.from({ length: n - k }, () => new Uint8Array(size));
          const up = measure(count * size * k, () => {
            for (let s = 0; s < count; s++) {
              const o = s * size * k;
              const d = Array.from(
                { length: k },
                (_, j) => data.subarray(o + j * size, o + (j + 1) * size),
              );
              sink ^= erasureEncode(d, n, into)[n - 1][0];
            }
          });
          line(`  upload path: 1 MiB segments, reused buffers${tag}`, up, x(up, zEnc, "zfec"));
        }
        // Keep only the shares the decode uses: indices 2 .. 2+k-1.
        const kept = segments.map((seg) =>
          encodeSegment(seg, k, n).slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d }))
        );
        const dec = measure(TOTAL, () => {
          for (const shares of kept) sink ^= decodeSegment(shares, k, n, SEGMENT)[0];
        });
        const zDec = k === 3 ? zfec?.decode : undefined;
        line(
          `decode ${k}-of-${n} (shares ${kept[0].map((s) => s.index).join(",")})${tag}`,
          dec,
          [...x(dec, zDec, "zfec"), ...x(dec, memcpy, "memcpy")],
        );
        // Correctness spot check so a broken coder can't post a fast figure.
        const back = decodeSegment(kept[7], k, n, SEGMENT);
        if (back.some((b, i) => b !== segments[7][i])) {
          throw new Error(`erasure ${k}-of-${n} decode mismatch (${kernel})`);
        }
      }
    }
  } finally {
    useErasureKernel(original);
  }
  if (sink === -1) console.log(sink);
}

export const section: BenchSection = {
  name: "erasure",
  title: "Reed–Solomon erasure coding (GF(2^8), 64 MiB in 128 KiB segments) vs memcpy and zfec",
  run,
};

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
import { simdVariant } from "../../lib/codec/wasm/gf256_simd.ts";

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
async function zfecFigures(
  again = false,
): Promise<{ version: string; encode: number; decode: number } | null> {
  if (!(await haveZfec())) {
    if (again) return null;
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

/** Best MB/s of each named job over ROUNDS rounds, the jobs interleaved within each round. */
function measureInterleaved(bytes: number, jobs: [string, () => void][]): Map<string, number> {
  const best = new Map(jobs.map(([name]) => [name, Infinity]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of jobs) {
      const t0 = performance.now();
      fn();
      best.set(name, Math.min(best.get(name)!, performance.now() - t0));
    }
  }
  return new Map([...best].map(([name, ms]) => [name, bytes / 1e6 / (ms / 1000)]));
}

async function run(): Promise<void> {
  const data = randomData(TOTAL);
  const segments: Uint8Array[] = [];
  for (let o = 0; o < TOTAL; o += SEGMENT) segments.push(data.subarray(o, o + SEGMENT));
  const original = erasureKernel();
  console.log(
    `${TOTAL / 1024 / 1024} MiB in ${segments.length} segments of ${SEGMENT / 1024} KiB, ` +
      `best of ${ROUNDS} (kernels interleaved round by round; zfec best of a run before and ` +
      `one after), one core; default kernel here: ${original}` +
      (original === "wasm-simd" ? ` (${simdVariant()})` : ""),
  );
  const kernels: ErasureKernel[] = original === "wasm-simd" ? ["wasm-simd", "typescript"] : [
    "typescript",
  ];
  if (original !== "wasm-simd") console.log("wasm-simd: skipped (no WebAssembly SIMD here)");

  const zBefore = await zfecFigures();
  const dest = new Uint8Array(TOTAL);
  const memcpy = measure(TOTAL, () => {
    for (let s = 0; s < segments.length; s++) dest.set(segments[s], s * SEGMENT);
  });

  let sink = 0;
  const as = (kernel: ErasureKernel, fn: () => void) => () => {
    useErasureKernel(kernel);
    fn();
  };
  const results = new Map<string, number>();
  try {
    // Warm up the JIT (and wasm tier-up) on every path before timing anything.
    for (const kernel of kernels) {
      useErasureKernel(kernel);
      for (const [k, n] of [[3, 10], [1, 10]]) {
        for (let s = 0; s < 64; s++) {
          const sh = encodeSegment(segments[s], k, n);
          const kept = sh.slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d }));
          decodeSegment(kept, k, n, SEGMENT);
        }
      }
    }
    const encode = (k: number, n: number) => () => {
      for (const seg of segments) sink ^= encodeSegment(seg, k, n)[n - 1][0];
    };
    // The upload path: 1 MiB segments (rounded to a multiple of k), parity into reused buffers.
    const size = Math.ceil(UPLOAD_SEGMENT / 3);
    const count = Math.floor(TOTAL / (size * 3));
    const into = Array.from({ length: 7 }, () => new Uint8Array(size));
    const upload = () => {
      for (let s = 0; s < count; s++) {
        const o = s * size * 3;
        const d = [0, 1, 2].map((j) => data.subarray(o + j * size, o + (j + 1) * size));
        sink ^= erasureEncode(d, 10, into)[9][0];
      }
    };
    // Keep only the shares a decode uses: indices 2 .. 2+k-1.
    const keep = (k: number, n: number) =>
      segments.map((seg) =>
        encodeSegment(seg, k, n).slice(2, 2 + k).map((d, i) => ({ index: 2 + i, data: d }))
      );
    const kept3 = keep(3, 10);
    const kept1 = keep(1, 10);
    const decode = (kept: typeof kept3, k: number, n: number) => () => {
      for (const shares of kept) sink ^= decodeSegment(shares, k, n, SEGMENT)[0];
    };
    for (
      const [what, bytes, mk] of [
        ["encode 3-of-10", TOTAL, () => encode(3, 10)],
        ["upload path 3-of-10", count * size * 3, () => upload],
        ["decode 3-of-10", TOTAL, () => decode(kept3, 3, 10)],
      ] as const
    ) {
      const got = measureInterleaved(bytes, kernels.map((kn) => [kn, as(kn, mk())]));
      for (const [kn, v] of got) results.set(`${what} [${kn}]`, v);
    }
    useErasureKernel(original);
    results.set("encode 1-of-10", measure(TOTAL, encode(1, 10)));
    results.set("decode 1-of-10", measure(TOTAL, decode(kept1, 1, 10)));
    // Correctness spot check so a broken coder can't post a fast figure.
    for (const kernel of kernels) {
      useErasureKernel(kernel);
      const back = decodeSegment(kept3[7], 3, 10, SEGMENT);
      if (back.some((b, i) => b !== segments[7][i])) {
        throw new Error(`erasure 3-of-10 decode mismatch (${kernel})`);
      }
    }
  } finally {
    useErasureKernel(original);
  }
  if (sink === -1) console.log(sink);

  const zAfter = await zfecFigures(true);
  const zfec = zBefore && zAfter
    ? {
      version: zBefore.version,
      encode: Math.max(zBefore.encode, zAfter.encode),
      decode: Math.max(zBefore.decode, zAfter.decode),
    }
    : zBefore ?? zAfter;

  line("raw memcpy (Uint8Array.set, 128 KiB)", memcpy);
  if (zfec) {
    line(`zfec ${zfec.version} encode 3-of-10`, zfec.encode, x(zfec.encode, memcpy, "memcpy"));
    line(
      `zfec ${zfec.version} decode 3-of-10 (shares 2,3,4)`,
      zfec.decode,
      x(zfec.decode, memcpy, "memcpy"),
    );
  }
  for (const [label, v] of results) {
    const z = label.startsWith("decode 3")
      ? zfec?.decode
      : label.includes("3-of-10")
      ? zfec?.encode
      : undefined;
    const shown = label.replace("upload path", "encode, upload path (1 MiB, into)").replace(
      "decode 3-of-10",
      "decode 3-of-10 (shares 2,3,4)",
    );
    line(shown, v, [...x(v, z, "zfec"), ...x(v, memcpy, "memcpy")]);
  }
  const simd = (w: string) => results.get(`${w} [wasm-simd]`);
  const ts = (w: string) => results.get(`${w} [typescript]`);
  if (simd("encode 3-of-10") && ts("encode 3-of-10")) {
    console.log(
      `wasm-simd vs typescript: encode ${
        (simd("encode 3-of-10")! / ts("encode 3-of-10")!).toFixed(2)
      }x, ` +
        `upload path ${(simd("upload path 3-of-10")! / ts("upload path 3-of-10")!).toFixed(2)}x, ` +
        `decode ${(simd("decode 3-of-10")! / ts("decode 3-of-10")!).toFixed(2)}x`,
    );
  }
}

export const section: BenchSection = {
  name: "erasure",
  title: "Reed–Solomon erasure coding (GF(2^8), 64 MiB in 128 KiB segments) vs memcpy and zfec",
  run,
};

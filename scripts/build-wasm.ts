/**
 * Builds the WebAssembly SIMD erasure kernel from its source,
 * lib/codec/wasm/gf256_kernel_source.ts (a small assembler: no compiler, no
 * download), and writes the bytes, base64, to lib/codec/wasm/gf256_kernel_wasm.ts.
 *
 *   deno run -A scripts/build-wasm.ts           # rewrite the committed module
 *   deno run -A scripts/build-wasm.ts --check   # exit 1 if it is out of date
 *
 * tests/codec/erasure_wasm_test.ts performs the same check.
 */
import { kernelModuleText } from "../lib/codec/wasm/build.ts";

const target = new URL("../lib/codec/wasm/gf256_kernel_wasm.ts", import.meta.url);
const text = kernelModuleText();
if (Deno.args.includes("--check")) {
  const now = await Deno.readTextFile(target).catch(() => "");
  if (now !== text) {
    console.error(`${target.pathname} is out of date: run deno run -A scripts/build-wasm.ts`);
    Deno.exit(1);
  }
  console.log(`${target.pathname} is up to date`);
} else {
  await Deno.writeTextFile(target, text);
  console.log(`wrote ${target.pathname}`);
}

/**
 * Runs the fuzz targets of tests/fuzz/targets.ts for longer than the test suite does.
 *
 *   deno run -A scripts/fuzz.ts [--runs N] [--seed S] [--target NAME ...]
 *
 * Defaults: 10,000 inputs per target (the HTTPS server target a tenth of that: each
 * input is a TLS connection), a random seed, every target. Prints the seed first
 * and, on a failure, the target, seed and fast-check's counterexample and path
 * (replay with --seed S --target NAME); exits 1.
 */
import { parseArgs } from "node:util";
import { stats, targets } from "../tests/fuzz/targets.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10000" },
    seed: { type: "string" },
    target: { type: "string", multiple: true },
  },
});
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : (Math.random() * 2 ** 31) | 0;
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
  console.error("usage: deno run -A scripts/fuzz.ts [--runs N] [--seed S] [--target NAME ...]");
  Deno.exit(2);
}
const wanted = values.target ?? [];
const unknown = wanted.filter((w) => !targets.some((t) => t.name === w));
if (unknown.length) {
  console.error(
    `unknown target(s) ${unknown.join(", ")}; targets: ${targets.map((t) => t.name).join(", ")}`,
  );
  Deno.exit(2);
}
console.log(`seed ${seed}, ${runs} inputs per target`);
let failed = false;
for (const t of targets) {
  if (wanted.length && !wanted.includes(t.name)) continue;
  const n = t.name === "http-request" ? Math.max(1, Math.ceil(runs / 10)) : runs;
  const t0 = performance.now();
  try {
    await t.run({ numRuns: n, seed });
    const s = stats.get(t.name);
    console.log(
      `ok    ${t.name.padEnd(18)} ${String(n).padStart(7)} inputs ` +
        `(${s?.accepted ?? 0} accepted, ${s?.refused ?? 0} refused) ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  } catch (e) {
    if (t.known) {
      console.log(`KNOWN ${t.name}: fails on a reported bug (${t.known})`);
      continue;
    }
    failed = true;
    console.log(`FAIL  ${t.name} with --seed ${seed} --target ${t.name}`);
    console.log(e instanceof Error ? e.message : String(e));
  }
}
Deno.exit(failed ? 1 : 0);

/**
 * Every fuzz target of tests/fuzz/targets.ts, briefly (a few seconds in all).
 * For longer runs: deno run -A scripts/fuzz.ts --runs 100000 [--seed S] [--target NAME].
 */
import { targets } from "./targets.ts";

for (const t of targets) {
  Deno.test({
    name: `fuzz: ${t.name} (${t.quickRuns} inputs)${
      t.known ? ` — skipped, known bug ${t.known}` : ""
    }`,
    ignore: t.known !== undefined,
    fn: () => t.run({ numRuns: t.quickRuns }),
  });
}

/**
 * `deno task bench`: every benchmark section, each printing its figures beside
 * the raw baselines (crypto, loopback) it measures in the same run.
 * Run one section with `deno task bench <name>`.
 */
import { sections } from "./bench/sections.ts";

const wanted = Deno.args.filter((a) => !a.startsWith("-"));
for (const s of sections) {
  if (wanted.length && !wanted.includes(s.name)) continue;
  console.log(`\n== ${s.name}: ${s.title} ==`);
  await s.run();
}

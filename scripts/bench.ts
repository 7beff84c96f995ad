/**
 * `deno task bench`: every benchmark section, each printing its figures beside
 * the raw baselines (crypto, loopback) it measures in the same run.
 * Run one section with `deno task bench <name>`.
 */
import { sections } from "./bench/sections.ts";
import { sharedReadsReady } from "../lib/storage/mod.ts";

// The in-process clients read as a `shoal client` process does (lib/storage/tls_reads.ts).
await sharedReadsReady();

const wanted = Deno.args.filter((a) => !a.startsWith("-"));
for (const s of sections) {
  if (wanted.length && !wanted.includes(s.name)) continue;
  console.log(`\n== ${s.name}: ${s.title} ==`);
  await s.run();
}

#!/usr/bin/env -S deno run -A --v8-flags=--max-semi-space-size=1
/** The `shoal` program: one binary, subcommands per role. */
import { runCli } from "./lib/cli/mod.ts";
// Inside a segment Worker this module serves segment jobs instead (the
// bundled program starts itself as its Workers: lib/grid/workers/pool.ts).
import { inSegmentWorker } from "./lib/grid/workers/segment_worker.ts";

if (import.meta.main && !inSegmentWorker) {
  Deno.exit(await runCli(Deno.args));
}

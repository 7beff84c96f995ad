#!/usr/bin/env -S deno run -A --v8-flags=--max-semi-space-size=1
/** The `shoal` program: one binary, subcommands per role. */
import { runCli } from "./lib/cli/mod.ts";
// Inside a segment Worker this module serves segment jobs instead (the
// bundled program starts itself as its Workers: lib/grid/workers/pool.ts).
import { inSegmentWorker } from "./lib/grid/workers/segment_worker.ts";
import { sharedReadsReady } from "./lib/storage/mod.ts";

if (import.meta.main && !inSegmentWorker) {
  // A client's connections read through one shared buffer once this check passes
  // (lib/storage/tls_reads.ts); it runs beside the command, never delaying it.
  if (Deno.args[0] === "client" || Deno.args[0] === "quickstart") void sharedReadsReady();
  Deno.exit(await runCli(Deno.args));
}

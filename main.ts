#!/usr/bin/env -S deno run -A --v8-flags=--max-semi-space-size=1
/** The `shoal` program: one binary, subcommands per role. */
import { runCli } from "./lib/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}

/** The software version, shown by `shoal --version` and announced in GSAs. */
export const VERSION = "0.1.0";

/**
 * V8 flags the program is meant to run with (the shebang of main.ts, the
 * deno.json tasks, the compiled binary, and the commands the quickstart
 * suggests all pass them). `--max-semi-space-size=1` keeps V8's young
 * generation at 1 MB: streaming uploads and downloads allocate megabytes of
 * short-lived buffers per segment but few objects, and with the default
 * young generation those buffers are freed only after 100+ MB of them pile
 * up; a small one has frequent, cheap scavenges free them. Peak RSS of a
 * 512 MiB `client put` falls from ~230 to ~150 MB, and CPU time falls too
 * (docs/performance.md §6).
 */
export const V8_FLAGS = ["--max-semi-space-size=1"];

/** `deno run` arguments for this program's flags: -A and --v8-flags. */
export const RUN_FLAGS = ["-A", `--v8-flags=${V8_FLAGS.join(",")}`];

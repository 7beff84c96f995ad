/**
 * Every runnable example in README.md runs as written: the "grid by hand" block is extracted
 * and run by bash in a fresh directory, with `shoal` standing for this checkout's main.ts. Only
 * its port is changed (to a free one), so that parallel test runs do not collide.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { freePort } from "../helpers/storage_process.ts";
import { RUN_FLAGS } from "../../lib/version.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export function readmeBlock(readme: string, after: string): string {
  const at = readme.indexOf(after);
  assert(at >= 0, `README has no '${after}'`);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  assert(m, `no sh block after '${after}'`);
  return m[1];
}

/** Processes of the example: in process group `pgid`, running in `marker`, or naming it. */
async function exampleProcesses(pgid: number, marker: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${e.name}/stat`).catch(() => "");
    // Fields after the parenthesised command: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") continue; // a zombie runs nothing
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    const cwd = await Deno.readLink(`/proc/${e.name}/cwd`).catch(() => "");
    if (Number(fields[2]) === pgid || cmd.includes(marker) || cwd.startsWith(marker)) {
      found.push(`${e.name} ${cmd.replaceAll("\0", " ").trim()}`);
    }
  }
  return found;
}

/** Waits (up to `ms`) until none of the example's processes remain; returns those that do. */
async function awaitNone(pgid: number, marker: string, ms: number): Promise<string[]> {
  let left = await exampleProcesses(pgid, marker);
  for (let t = 0; t < ms && left.length; t += 200) {
    await new Promise((r) => setTimeout(r, 200));
    left = await exampleProcesses(pgid, marker);
  }
  return left;
}

Deno.test("README: the grid-by-hand example runs as written", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const block = readmeBlock(readme, "A grid by hand");
  assert(block.includes("127.0.0.1:7001"), block);
  const port = await freePort();
  const tmp = await Deno.makeTempDir({ prefix: "shoal-readme-" });
  // `shoal` is a program on PATH (as ./main.ts or the binary would be), not a shell function:
  // the example's `kill %1` must reach the server itself, not a subshell around it.
  await Deno.mkdir(`${tmp}/bin`);
  await Deno.writeTextFile(
    `${tmp}/bin/shoal`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run ${RUN_FLAGS.join(" ")} "${ROOT}main.ts" "$@"\n`,
    { mode: 0o755 },
  );
  const script = [
    "set -euo pipefail",
    `PATH="${tmp}/bin:$PATH"`,
    block.replaceAll("127.0.0.1:7001", `127.0.0.1:${port}`),
  ].join("\n");
  await Deno.writeTextFile(`${tmp}/example.sh`, script);
  // The example runs in a process group of its own (setsid: its pid is the group's id), so that
  // whatever it started, backgrounded or not, wherever it runs, is found and stopped by the group.
  const child = new Deno.Command("setsid", {
    args: ["bash", "-c", "bash -x example.sh > out.txt 2> err.txt < /dev/null"],
    cwd: tmp,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const pgid = child.pid;
  const timer = setTimeout(() => killGroup(pgid), 300_000);
  try {
    // Output goes to files: a background server left by a failed run must not hold a pipe open.
    const out = await child.status;
    clearTimeout(timer);
    const stdout = await Deno.readTextFile(`${tmp}/out.txt`).catch(() => "");
    const stderr = await Deno.readTextFile(`${tmp}/err.txt`).catch(() => "");
    assertEquals(out.code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert(stdout.includes("round trip ok"), stdout);
    assertEquals(await Deno.readTextFile(`${tmp}/copy.txt`), "my report\n");
    assertEquals((await Deno.stat(`${tmp}/intro.txt`)).mode! & 0o777, 0o600);
    // `kill %1` stopped the storage server: nothing of the example is left running.
    assertEquals(await awaitNone(pgid, tmp, 10_000), [], "processes of the example still running");
  } finally {
    clearTimeout(timer);
    killGroup(pgid);
    const left = await awaitNone(pgid, tmp, 5_000);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    assertEquals(left, [], "processes of the example survived SIGKILL of its group");
  }
});

function killGroup(pgid: number): void {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch { /* the group is empty */ }
}

Deno.test("./main.ts is executable (in git and on disk)", async () => {
  const st = await Deno.stat(`${ROOT}main.ts`);
  assert((st.mode! & 0o111) !== 0, "main.ts has no execute bit");
  const out = await new Deno.Command("git", {
    args: ["ls-files", "-s", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => null);
  const line = out ? new TextDecoder().decode(out.stdout) : "";
  if (line) assert(line.startsWith("100755 "), `git records ${line}`);
});

Deno.test("README's Documentation section links every page in docs/", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const at = readme.indexOf("## Documentation");
  assert(at >= 0);
  const next = readme.indexOf("\n## ", at + 1);
  const section = readme.slice(at, next < 0 ? undefined : next);
  const missing: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}docs`)) {
    if (e.isFile && e.name.endsWith(".md") && !section.includes(`(docs/${e.name})`)) {
      missing.push(e.name);
    }
  }
  assertEquals(missing.sort(), [], "pages in docs/ that the README does not link");
});

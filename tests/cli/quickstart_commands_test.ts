/**
 * The quickstart's "try, in another terminal" commands are short, work from the checkout as
 * printed (run here by bash, literally), and a second quickstart on the same directory says
 * that one is already running.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startShoal } from "../helpers/process.ts";
import { runShoal } from "../helpers/storage_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

async function waitForOutput(p: { stdout(): string; stderr(): string }, text: string, ms = 90_000) {
  const end = Date.now() + ms;
  while (!p.stdout().includes(text)) {
    if (Date.now() > end) throw new Error(`timed out waiting for '${text}'; stderr: ${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("quickstart: short commands that work as printed; one grid per directory", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "shoal-qs-cmds-" });
  const dir = `${tmp}/grid`;
  const qs = await startShoal(["quickstart", "--dir", dir, "--servers", "3"]);
  try {
    await waitForOutput(qs, "Press Ctrl-C");
    const out = qs.stdout();
    const lines = out.split("\n");
    const at = lines.findIndex((l) => l.startsWith("Try, in another terminal"));
    assert(at >= 0, out);
    assert(lines[at].includes(ROOT), `says where to run them: ${lines[at]}`);
    const cmds: string[] = [];
    for (let i = at + 1; i < lines.length && lines[i].startsWith("  "); i++) {
      cmds.push(lines[i].trim());
    }
    assert(cmds.length >= 6, out);
    for (const c of cmds) {
      assert(!c.includes("/_npx/") && !c.includes("main.ts"), `short command: ${c}`);
    }
    for (const verb of ["servers", "mkdir", "put", "ls", "get"]) {
      assert(cmds.some((c) => c.includes(` client ${verb}`)), `suggests ${verb}`);
    }
    // Run them as a person would: one shell, in the checkout.
    const script = `set -euo pipefail\n${cmds.join("\n")}\n`;
    const r = await new Deno.Command("bash", {
      args: ["-c", script],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const so = new TextDecoder().decode(r.stdout);
    const se = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 0, `stdout:\n${so}\nstderr:\n${se}`);
    assert(so.trim().endsWith("hello"), so);

    // A second quickstart in the same directory: it says one is already running.
    const second = await runShoal(["quickstart", "--dir", dir]);
    assertEquals(second.code, 1, second.stderr);
    assert(second.stderr.includes(`a quickstart grid is already running in ${dir}`), second.stderr);
    assert(!second.stderr.includes("already in use"), second.stderr);
    // The quickstart directory itself is not a node: commands say where the nodes are.
    const wrong = await runShoal(["client", "servers", "--dir", dir]);
    assertEquals(wrong.code, 1);
    assert(wrong.stderr.includes(`its nodes are ${dir}/client`), wrong.stderr);
  } finally {
    assertEquals(await qs.stop("SIGINT"), 0, qs.stderr());
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

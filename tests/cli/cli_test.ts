import { assert, assertEquals } from "../helpers/assert.ts";
import { runShoal } from "../helpers/storage_process.ts";

Deno.test("shoal --help, --version, role help and usage errors", async (t) => {
  await t.step("top-level help lists the roles", async () => {
    const r = await runShoal(["--help"]);
    assertEquals(r.code, 0);
    for (const role of ["operator", "storage", "client", "quickstart"]) {
      assert(r.stdout.includes(role), role);
    }
  });
  await t.step("--version", async () => {
    const r = await runShoal(["--version"]);
    assertEquals(r.code, 0);
    assert(/^shoal \d+\.\d+\.\d+/.test(r.stdout));
  });
  await t.step("each role has --help listing its commands", async () => {
    const expect: Record<string, string[]> = {
      operator: [
        "create",
        "get-introduction-text",
        "add-announcement",
        "remove-announcement",
        "list",
        "maintain",
        "run",
      ],
      storage: ["create", "run", "url", "join", "announcement"],
      client: ["create-node", "servers", "run"],
    };
    for (const [role, cmds] of Object.entries(expect)) {
      const r = await runShoal([role, "--help"]);
      assertEquals(r.code, 0, role);
      for (const c of cmds) assert(r.stdout.includes(`  ${c}`), `${role} ${c}`);
      const h = await runShoal([role, cmds[0], "--help"]);
      assertEquals(h.code, 0);
      assert(h.stdout.startsWith(`Usage: shoal ${role} ${cmds[0]}`), h.stdout);
    }
  });
  await t.step("unknown commands and bad flags exit 2 with a clear message", async () => {
    const cases: [string[], string][] = [
      [["bogus"], "unknown command 'bogus'"],
      [["storage", "bogus"], "unknown command 'storage bogus'"],
      [["storage", "url", "--bogus"], "bogus"],
      [["storage", "create", "--dir", "/nonexistent/shoal"], "missing required option --listen"],
      [["ls"], "did you mean 'shoal client ls'"],
      [["client", "lst"], "did you mean 'shoal client ls'"],
      [["operator", "add-announcement", "--dir", "/nonexistent"], "missing argument"],
      [[], "Usage"],
    ];
    for (const [args, msg] of cases) {
      const r = await runShoal(args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert(r.stderr.includes(msg), `${args.join(" ")}: '${msg}' not in ${r.stderr}`);
    }
  });
  await t.step("create-node's usage line names every option", async () => {
    const r = await runShoal(["client", "create-node", "--help"]);
    assertEquals(r.code, 0);
    const usage = r.stdout.split("\n")[0];
    for (
      const o of ["--refresh-interval", "--introducer-v3-file", "--nickname", "--shares-needed"]
    ) {
      assert(usage.includes(o), `${o} not in: ${usage}`);
    }
  });
  await t.step("operational failures exit 1", async () => {
    const r = await runShoal(["client", "servers", "--dir", "/nonexistent/shoal"]);
    assertEquals(r.code, 1);
    assert(r.stderr.includes("not a client node"), r.stderr);
  });
});

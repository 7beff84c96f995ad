import { assert, assertEquals } from "../helpers/assert.ts";
import { startShoal } from "../helpers/process.ts";
import { runShoal } from "../helpers/storage_process.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function waitForOutput(p: { stdout(): string; stderr(): string }, text: string, ms = 60_000) {
  const end = Date.now() + ms;
  while (!p.stdout().includes(text)) {
    if (Date.now() > end) throw new Error(`timed out waiting for '${text}'; stderr: ${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test(
  "quickstart builds a local grid, stops on Ctrl-C, and reopens the same grid",
  opts,
  async () => {
    const dir = `${await Deno.makeTempDir({ prefix: "shoal-qs-" })}/grid`;
    try {
      const first = await startShoal(["quickstart", "--dir", dir, "--servers", "3"]);
      let code: number;
      let text1: string;
      try {
        await waitForOutput(first, "Press Ctrl-C");
        assert(first.stdout().includes("Created a local grid of 3 storage servers"));
        text1 = first.stdout().split("\n").find((l) => l.startsWith("shoal:DIR-R1:"))!;
        assert(text1, "prints the introduction text");
        assertEquals(text1.split(",").length, 4);
        const r = await runShoal([
          "client",
          "servers",
          "--dir",
          `${dir}/client`,
          "--json",
          "--refresh",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(JSON.parse(r.stdout).map((s: { nickname: string }) => s.nickname).sort(), [
          "s1",
          "s2",
          "s3",
        ]);
      } finally {
        code = await first.stop("SIGINT");
      }
      assertEquals(code, 0, first.stderr());
      const second = await startShoal(["quickstart", "--dir", dir]);
      try {
        await waitForOutput(second, "Press Ctrl-C");
        assert(second.stdout().includes("Reopened a local grid of 3 storage servers"));
        const text2 = second.stdout().split("\n").find((l) => l.startsWith("shoal:DIR-R1:"))!;
        assertEquals(text2.split(",")[0], text1.split(",")[0], "same grid service directory");
      } finally {
        assertEquals(await second.stop("SIGINT"), 0, second.stderr());
      }
    } finally {
      await Deno.remove(dir.replace(/\/grid$/, ""), { recursive: true }).catch(() => {});
    }
  },
);

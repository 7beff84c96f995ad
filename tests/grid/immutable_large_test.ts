/**
 * A 100 MiB+ file through 10 real storage processes, streamed both ways from
 * a generated source (never held in memory) by a separate client process
 * (immutable_large_child.ts, so the figure is a client's own RSS, not the test
 * runner's): the bytes come back identical and resident memory stays bounded.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { TestGrid } from "../helpers/grid.ts";

const SIZE = 100 * 1024 * 1024 + 12345;
const CHILD = new URL("./immutable_large_child.ts", import.meta.url).pathname;

Deno.test("100 MiB+ round trip streams with bounded memory", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await TestGrid.start(10);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHILD, String(SIZE), ...g.urls()],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, `client process failed: ${stderr}`);
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    assertEquals(r.got, r.want, "downloaded bytes equal the uploaded ones");
    assertEquals(r.placed, 10);
    const growth = (r.rssPeak - r.rssStart) / 1e6;
    console.log(
      `client RSS: start ${(r.rssStart / 1e6).toFixed(0)} MB, peak ${
        (r.rssPeak / 1e6).toFixed(0)
      } MB ` +
        `(growth ${growth.toFixed(0)} MB) for ${(SIZE / 1e6).toFixed(0)} MB up and down`,
    );
    assert(growth < 200, `client RSS grew by ${growth.toFixed(0)} MB (limit 200)`);
  } finally {
    await g.close();
  }
});

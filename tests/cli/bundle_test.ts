import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { SEGMENT_WORKER_NAME } from "../../lib/grid/workers/protocol.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** `deno bundle` of main.ts into `${out}/shoal.js` (as `deno task bundle` does); its path. */
async function buildBundle(out: string): Promise<string> {
  const bundle = `${out}/shoal.js`;
  const b = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "deno", "-o", bundle, `${ROOT}main.ts`],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(b.code, 0, new TextDecoder().decode(b.stderr));
  return bundle;
}

Deno.test("deno bundle builds one runnable file that runs real commands", async () => {
  const out = await Deno.makeTempDir({ prefix: "shoal-bundle-" });
  try {
    const bundle = await buildBundle(out);
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", bundle, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const help = await run(["--help"]);
    assertEquals(help.code, 0);
    assert(new TextDecoder().decode(help.stdout).includes("Usage: shoal"));
    const dir = `${out}/node`;
    const create = await run(["storage", "create", "--dir", dir, "--listen", "127.0.0.1:45123"]);
    assertEquals(create.code, 0, new TextDecoder().decode(create.stderr));
    const url = await run(["storage", "url", "--dir", dir]);
    assertEquals(url.code, 0);
    assert(new TextDecoder().decode(url.stdout).startsWith("shoal-storage:v1:"));
    assertEquals((await Deno.stat(`${dir}/private/swissnum`)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("the bundle starts itself as its segment Workers, and puts and gets a large file", async () => {
  const out = await Deno.makeTempDir({ prefix: "shoal-bundle-" });
  const jg = await startJoinedGrid({ servers: 3, shares: { k: 2, n: 3, happy: 3 } });
  try {
    const bundle = await buildBundle(out);
    // Started as a segment Worker (what lib/grid/workers/pool.ts does in a
    // bundle), the bundle answers an encode job instead of running the CLI.
    const w = new Worker(new URL(`file://${bundle}`), {
      type: "module",
      name: SEGMENT_WORKER_NAME,
    });
    try {
      const reply = await new Promise<{ done?: { leaf: Uint8Array } }>((resolve, reject) => {
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
        w.onmessage = (e) => {
          if (e.data.ready) {
            const job = {
              key: new Uint8Array(32),
              pos: 3,
              k: 2,
              n: 3,
              size: 8,
              input: new Uint8Array(16),
              length: 16,
              out: new Uint8Array(24),
            };
            w.postMessage({ id: 1, op: "encode", job });
          } else resolve(e.data);
        };
      });
      assertEquals(reply.done?.leaf.length, 32);
    } finally {
      w.terminate();
    }
    // put and get through the bundle: 12 MiB is 12 segments, coded on Workers.
    const file = `${out}/src.bin`;
    const data = randomBytes(12 * 1024 * 1024 + 77);
    await Deno.writeFile(file, data);
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--v8-flags=--max-semi-space-size=1", bundle, ...args],
        env: { SHOAL_SEGMENT_WORKERS: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const put = await run(["client", "put", "--dir", jg.clientDir, file]);
    assertEquals(put.code, 0, new TextDecoder().decode(put.stderr));
    const capFile = `${out}/src.cap`;
    await Deno.writeFile(capFile, put.stdout, { mode: 0o600 });
    const got = `${out}/got.bin`;
    const get = await run([
      "client",
      "get",
      "--dir",
      jg.clientDir,
      "--cap-file",
      capFile,
      "CAP",
      got,
    ]);
    assertEquals(get.code, 0, new TextDecoder().decode(get.stderr));
    const back = await Deno.readFile(got);
    assertEquals(back.length, data.length);
    assert(back.every((v, i) => v === data[i]), "the bundle's get returned other bytes");
  } finally {
    await jg.close();
    await Deno.remove(out, { recursive: true });
  }
});

import { assert, assertEquals } from "../helpers/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("deno bundle builds one runnable file that runs real commands", async () => {
  const out = await Deno.makeTempDir({ prefix: "shoal-bundle-" });
  try {
    const bundle = `${out}/shoal.js`;
    const b = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform", "deno", "-o", bundle, `${ROOT}main.ts`],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(b.code, 0, new TextDecoder().decode(b.stderr));
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

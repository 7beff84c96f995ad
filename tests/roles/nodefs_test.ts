import { assert, assertEquals } from "../helpers/assert.ts";
import { loadOrCreateSecret } from "../../lib/roles/nodefs.ts";

Deno.test("loadOrCreateSecret: concurrent first uses agree on one secret, mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/secret`;
    const all = await Promise.all(Array.from({ length: 20 }, () => loadOrCreateSecret(path)));
    for (const s of all) assertEquals(s, all[0]);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    assertEquals(await loadOrCreateSecret(path), all[0]);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assertEquals(left, ["secret"], "no temp files left");
    assert(all[0].length === 32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

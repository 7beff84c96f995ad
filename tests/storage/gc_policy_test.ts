/**
 * The garbage-collection policy (docs/storage-node.md §5): off by default,
 * stated in the file `storage create` writes and printed by `storage run`;
 * "age" and "cutoff-date" modes, and the store honouring each.
 */
import assert from "node:assert/strict";
import { ConfigError, describeGc, parseConfig } from "../../lib/roles/storage/mod.ts";
import { ShareStore } from "../../lib/storage/mod.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";

const base = '[storage]\nlisten = "127.0.0.1:9"\n';

Deno.test("gc policy: off by default; age and cutoff-date parse; bad values name the key", () => {
  const d = parseConfig(base);
  assert.equal(d.gc, "off");
  assert.equal(d.gcCutoffDate, null);
  assert.match(describeGc(d), /garbage collection: off/);
  assert.equal(parseConfig(base + 'gc = "age"\n').gc, "age");
  const c = parseConfig(base + 'gc = "cutoff-date"\ngc_cutoff_date = "2026-06-01"\n');
  assert.equal(c.gcCutoffDate, Date.parse("2026-06-01T00:00:00Z"));
  assert.match(describeGc(c), /2026-06-01T00:00:00\.000Z/);
  const unquoted = parseConfig(base + 'gc = "cutoff-date"\ngc_cutoff_date = 2026-06-01\n');
  assert.equal(unquoted.gcCutoffDate, c.gcCutoffDate);
  for (
    const [text, re] of [
      [base + 'gc = "on"\n', /storage\.gc: must be one of/],
      [base + 'gc = "cutoff-date"\n', /storage\.gc_cutoff_date/],
      [base + 'gc = "age"\ngc_cutoff_date = "2026-01-01"\n', /storage\.gc_cutoff_date/],
      [base + 'gc = "cutoff-date"\ngc_cutoff_date = "June"\n', /storage\.gc_cutoff_date/],
    ] as const
  ) {
    assert.throws(() => parseConfig(text, "D/shoal.toml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("gc policy: the store keeps expired shares when off, deletes by age or cutoff date", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-gc-" });
  try {
    const clock = { t: 1_700_000_000_000 };
    const store = await ShareStore.open({
      root: `${dir}/storage`,
      now: () => clock.t,
      leaseDuration: 10,
    });
    const secrets = (n: number) => ({
      upload: new Uint8Array(32).fill(n),
      renew: new Uint8Array(32).fill(n + 1),
      cancel: new Uint8Array(32).fill(n + 2),
    });
    const put = async (n: number) => {
      const si = new Uint8Array(16).fill(n);
      await store.allocate(si, secrets(n), [0], 4);
      await store.writeImmutable(si, 0, secrets(n).upload, 0, 4, new Uint8Array(4));
      return si;
    };
    const a = await put(1);
    clock.t += 5000;
    const b = await put(2); // renewed 5 s after a
    clock.t += 8000; // a's lease expired 3 s ago, b's lasts 2 s more
    assert.deepEqual(await store.gc({ expire: false }), { removed: 0 });
    assert.deepEqual(await store.listImmutable(a), [0], "off: an expired share is kept");
    // cutoff-date: leases renewed before the cutoff count as expired even if unexpired by age.
    const cutoff = 1_700_000_000_000 + 6000; // both were last renewed before this
    assert.deepEqual(await store.gc({ expiredBefore: cutoff + 10_000 }), { removed: 2 });
    assert.deepEqual(await store.listImmutable(b), []);
    const c = await put(3);
    clock.t += 11_000;
    assert.deepEqual(await store.gc(), { removed: 1 }, "age: every lease expired");
    assert.deepEqual(await store.listImmutable(c), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gc policy: storage create states it, storage run prints it", async () => {
  const node = await createStorageNode();
  try {
    const toml = await Deno.readTextFile(`${node.dir}/shoal.toml`);
    assert.match(toml, /^gc = "off"$/m);
    assert.match(toml, /"age" +delete a share once every lease on it has expired/);
    const s = await startStorageServer(node.dir);
    await s.stop();
    assert.match(s.stderr(), /garbage collection: off \(storage\.gc = "off"\)/);
  } finally {
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

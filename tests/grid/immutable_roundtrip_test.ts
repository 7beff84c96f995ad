/**
 * Immutable files on 10 real storage processes: round trips at the segment
 * boundaries, ranges, lost and corrupted shares, convergence, happiness,
 * check/verify/repair.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { base32Encode } from "../../lib/codec/mod.ts";
import {
  convergenceKey,
  diminishCap,
  formatCap,
  immutableStorageIndex,
  parseCap,
  randomBytes,
  sha256,
} from "../../lib/crypto/mod.ts";
import {
  DEFAULT_SEGMENT_SIZE,
  type Grid,
  NotEnoughServersError,
  type UploadOptions,
} from "../../lib/grid/mod.ts";
import { TestGrid } from "../helpers/grid.ts";
import { encodingParamsBytesForTest } from "./immutable_helpers.ts";
import { readAll } from "../helpers/streams.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const SECRET = randomBytes(32);
const base: UploadOptions = { k: 3, n: 10, happy: 7, convergenceSecret: SECRET };

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function siOf(cap: string): string {
  const c = parseCap(cap);
  if (c.kind !== "immutable-read") throw new Error("not a CHK-R cap");
  return base32Encode(immutableStorageIndex(c.key));
}

function convergentSi(data: Uint8Array, o: UploadOptions): string {
  const hash = sha256(data);
  const key = convergenceKey(o.convergenceSecret!, encodingParamsBytesForTest(o), hash);
  return base32Encode(immutableStorageIndex(key));
}

/** Share files of `cap` on server i: shnum -> path. */
async function shareFiles(g: TestGrid, i: number, cap: string): Promise<Map<number, string>> {
  const si = siOf(cap);
  const dir = `${g.servers[i].node.dir}/storage/immutable/${si.slice(0, 2)}/${si}`;
  const out = new Map<number, string>();
  try {
    for await (const e of Deno.readDir(dir)) {
      if (/^\d+$/.test(e.name)) out.set(Number(e.name), `${dir}/${e.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Every file (complete or incoming) any server holds for this storage index. */
async function leftovers(g: TestGrid, si: string): Promise<string[]> {
  const found: string[] = [];
  for (const s of g.servers) {
    const root = `${s.node.dir}/storage`;
    try {
      for await (const e of Deno.readDir(`${root}/immutable/${si.slice(0, 2)}/${si}`)) {
        if (/^\d+$/.test(e.name)) found.push(`${root}/immutable/${si}/${e.name}`);
      }
    } catch { /* none */ }
    try {
      for await (const e of Deno.readDir(`${root}/incoming`)) {
        if (e.name.startsWith(si)) found.push(`${root}/incoming/${e.name}`);
      }
    } catch { /* none */ }
  }
  return found;
}

async function roundTrip(
  grid: Grid,
  data: Uint8Array,
  o: Partial<UploadOptions> = {},
): Promise<string> {
  const r = await grid.uploadImmutable(data, { ...base, ...o });
  assertEquals(r.size, data.length);
  const back = await readAll(grid.downloadImmutable(r.cap));
  assert(same(back, data), `round trip of ${data.length} bytes`);
  return r.cap;
}

Deno.test("immutable files on 10 real servers", opts, async (t) => {
  const g = await TestGrid.start(10);
  try {
    const grid = g.grid();

    await t.step(
      "round trips: 0, 1, segment−1, segment, segment+1 (default 1 MiB segments)",
      async () => {
        const seg = Math.ceil(DEFAULT_SEGMENT_SIZE / 3) * 3;
        for (const size of [0, 1, seg - 1, seg, seg + 1, 3 * seg + 17]) {
          const cap = await roundTrip(grid, randomBytes(size));
          assert(cap.startsWith("shoal:CHK-R1:") && cap.endsWith(`:3:10:${size}`));
        }
        // Small segments, other encodings.
        await roundTrip(grid, randomBytes(50_000), { segmentSize: 4096 });
        await roundTrip(grid, randomBytes(10_001), { k: 1, n: 3, happy: 3, segmentSize: 1000 });
        await roundTrip(grid, randomBytes(777), { k: 10, n: 10, happy: 10 });
      },
    );

    await t.step("placement: one share per server, permuted ring; progress reported", async () => {
      const seen: number[] = [];
      const r = await grid.uploadImmutable(randomBytes(100_000), {
        ...base,
        segmentSize: 8192,
        convergenceSecret: null,
        onProgress: (d) => seen.push(d),
      });
      assertEquals(r.placed.length, 10);
      assert(r.placed.every((p) => p.shares.length === 1));
      assertEquals(r.alreadyHad, 0);
      assertEquals(seen[seen.length - 1], 100_000);
      for (let i = 0; i < 10; i++) assertEquals((await shareFiles(g, i, r.cap)).size, 1);
      assertEquals((await leftovers(g, siOf(r.cap))).length, 10);
    });

    await t.step("range reads fetch only the segments needed and return exact bytes", async () => {
      const data = randomBytes(100_003);
      const { cap } = await grid.uploadImmutable(data, { ...base, segmentSize: 4096 });
      for (
        const [off, len] of [[0, 1], [4097, 10], [4095, 2], [99_000, 5000], [100_002, 1], [
          100_003,
          0,
        ], [12345, 40000]]
      ) {
        const got = await readAll(grid.downloadImmutable(cap, { offset: off, length: len }));
        assert(
          same(got, data.subarray(off, Math.min(data.length, off + len))),
          `range ${off}+${len}`,
        );
      }
      const tail = await readAll(grid.downloadImmutable(cap, { offset: 50_000 }));
      assert(same(tail, data.subarray(50_000)));
      await assertRejects(
        () => readAll(grid.downloadImmutable(cap, { offset: 100_004 })),
        RangeError,
      );
    });

    await t.step("convergence dedupes: same cap, alreadyHad > 0, nothing re-sent", async () => {
      const data = randomBytes(30_000);
      const a = await grid.uploadImmutable(data, base);
      const b = await g.grid().uploadImmutable(data, base);
      assertEquals(a.cap, b.cap);
      assertEquals(b.alreadyHad, 10);
      const c = await grid.uploadImmutable(data, { ...base, convergenceSecret: randomBytes(32) });
      assert(c.cap !== a.cap, "another secret gives another key");
      const d = await grid.uploadImmutable(data, { ...base, convergenceSecret: null });
      assert(d.cap !== a.cap && d.alreadyHad === 0, "random key");
    });

    await t.step(
      "too few servers: NotEnoughServersError, and no share left on any server",
      async () => {
        const data = randomBytes(20_000);
        const e = await assertRejects(
          () => g.grid([0, 1, 2, 3, 4]).uploadImmutable(data, base),
          NotEnoughServersError,
        );
        assert(/need 7 servers.*have 5/.test(e.message), e.message);
        // 7 servers known but one is down: allocation happens on 6, then is aborted.
        await g.stop(6);
        try {
          const e2 = await assertRejects(
            () => g.grid([0, 1, 2, 3, 4, 5, 6]).uploadImmutable(data, base),
            NotEnoughServersError,
          );
          assert(/need 7 servers holding distinct shares, have 6/.test(e2.message), e2.message);
        } finally {
          await g.restart(6);
        }
        const cap =
          (await g.grid([0]).uploadImmutable(data, { ...base, k: 1, n: 1, happy: 1 })).cap;
        // The same convergent key (k, n differ, so not the same SI): compute the failed upload's SI.
        void cap;
        const failedSi = convergentSi(data, base);
        assertEquals(await leftovers(g, failedSi), [], "no complete or incoming share anywhere");
      },
    );

    await t.step(
      "a server killed mid-upload: shares go elsewhere or the upload fails cleanly",
      async () => {
        const data = randomBytes(6 * 1024 * 1024);
        let killed = false;
        const r = await grid.uploadImmutable(data, {
          ...base,
          convergenceSecret: null,
          segmentSize: 64 * 1024,
          onProgress: (d) => {
            if (!killed && d > data.length / 3) {
              killed = true;
              g.stop(5);
            }
          },
        });
        assert(killed);
        assertEquals(r.placed.length, 9, "placed on the 9 others");
        await g.restart(5);
        assert(same(await readAll(g.grid().downloadImmutable(r.cap)), data));
        // happy = 10 cannot survive a loss: fails, and nothing is left behind.
        killed = false;
        const data2 = randomBytes(6 * 1024 * 1024);
        const o = { ...base, happy: 10, segmentSize: 64 * 1024 };
        await assertRejects(() =>
          grid.uploadImmutable(data2, {
            ...o,
            onProgress: (d) => {
              if (!killed && d > data2.length / 3) {
                killed = true;
                g.stop(2);
              }
            },
          }), NotEnoughServersError);
        await g.restart(2); // an interrupted upload's incoming file is dropped at startup
        assertEquals(await leftovers(g, convergentSi(data2, o)), []);
      },
    );

    await t.step("any n−k servers stopped: download still succeeds", async () => {
      const data = randomBytes(60_000);
      const { cap } = await grid.uploadImmutable(data, { ...base, segmentSize: 8192 });
      for (const i of [0, 2, 3, 5, 7, 8, 9]) await g.stop(i);
      try {
        assert(same(await readAll(g.grid().downloadImmutable(cap)), data));
        const chk = await g.grid().checkImmutable(cap);
        assertEquals(chk.sharesFound, 3);
        assert(chk.recoverable && !chk.healthy);
        await g.stop(1);
        await assertRejects(
          () => readAll(g.grid().downloadImmutable(cap)),
          Error,
          "not enough shares",
        );
      } finally {
        for (const i of [0, 1, 2, 3, 5, 7, 8, 9]) await g.restart(i);
      }
    });

    await t.step("corrupted blocks on n−k servers: correct data, corruption reported", async () => {
      const data = randomBytes(40_000);
      const { cap } = await grid.uploadImmutable(data, { ...base, segmentSize: 4096 });
      const corrupted: number[] = [];
      for (let i = 0; i < 7; i++) {
        for (const [, path] of await shareFiles(g, i, cap)) {
          const b = await Deno.readFile(path);
          b[b.length - 100] ^= 0xff; // inside the last blocks
          b[b.length - 5000] ^= 0x01;
          await Deno.writeFile(path, b);
          corrupted.push(i);
        }
      }
      assertEquals(corrupted.length, 7);
      assert(same(await readAll(g.grid().downloadImmutable(cap)), data));
      const v = await g.grid().verifyImmutable(cap);
      assertEquals(v.sharesFound, 3);
      assert(v.recoverable && !v.healthy);
      const bad = v.servers.flatMap((s) => s.shares).filter((s) => !s.ok);
      assertEquals(bad.length, 7);
      // check (headers only) does not notice block corruption; verify did.
      assertEquals((await g.grid().checkImmutable(cap)).sharesFound, 10);
      const log = await Deno.readTextFile(
        `${g.servers[corrupted[0]].node.dir}/storage/corruption.log`,
      );
      assert(log.length > 0, "corruption reported to the server");
      // A header corrupted on top: still fine with the 3 good ones.
      const [[, p0]] = [...await shareFiles(g, 0, cap)];
      const b = await Deno.readFile(p0);
      b[30] ^= 0xff;
      await Deno.writeFile(p0, b);
      assert(same(await readAll(g.grid().downloadImmutable(cap)), data));
    });

    await t.step("check / verify / repair after deleting shares", async () => {
      const data = randomBytes(70_000);
      const { cap } = await grid.uploadImmutable(data, { ...base, segmentSize: 8192 });
      const healthy = await grid.checkImmutable(cap);
      assert(healthy.healthy && healthy.happiness === 10);
      const verified = await grid.verifyImmutable(cap);
      assert(verified.healthy && verified.verifiedBlocks);
      for (const i of [1, 4, 6]) {
        for (const [, p] of await shareFiles(g, i, cap)) await Deno.remove(p);
      }
      const before = await grid.checkImmutable(cap);
      assertEquals(before.sharesFound, 7);
      assert(!before.healthy && before.recoverable);
      // Repair works with the verify cap alone.
      const vcap = formatCap(await diminishCap(parseCap(cap)));
      const rep = await grid.repairImmutable(vcap);
      assert(rep.repaired);
      assertEquals(rep.before.sharesFound, 7);
      assert(rep.after.healthy, "all 10 shares again");
      assertEquals(rep.after.happiness, 10);
      for (const i of [1, 4, 6]) {
        assertEquals((await shareFiles(g, i, cap)).size, 1, `server ${i} got its share back`);
      }
      assert((await grid.verifyImmutable(cap)).healthy);
      assert(
        same(await readAll(g.grid([1, 4, 6]).downloadImmutable(cap)), data),
        "repaired shares alone",
      );
      const again = await grid.repairImmutable(cap);
      assert(!again.repaired);
    });

    await t.step("repair --verify re-creates shares with bad blocks on other servers", async () => {
      const data = randomBytes(50_000);
      const { cap } = await grid.uploadImmutable(data, { ...base, segmentSize: 8192 });
      // Blocks (not headers) of the shares on servers 2 and 5 corrupted.
      const badShares: number[] = [];
      for (const i of [2, 5]) {
        for (const [sh, path] of await shareFiles(g, i, cap)) {
          const b = await Deno.readFile(path);
          b[b.length - 10] ^= 0xff;
          await Deno.writeFile(path, b);
          badShares.push(sh);
        }
      }
      // Judged by headers, the file looks healthy: plain repair does nothing.
      assert(!(await grid.repairImmutable(cap)).repaired);
      const rep = await grid.repairImmutable(cap, { verify: true });
      assert(rep.repaired);
      assertEquals(rep.before.sharesFound, 8);
      assert(rep.after.healthy && rep.after.verifiedBlocks, "every share number verified again");
      const bad = new Map([[badShares[0], 2], [badShares[1], 5]]);
      for (const [sh, was] of bad) {
        const good = rep.after.servers.filter((srv) =>
          srv.shares.some((x) => x.shareNumber === sh && x.ok)
        );
        assertEquals(good.length, 1, `one good copy of share ${sh}`);
        // On disk: the bad copy where it was, and a new one on another server.
        const holders: number[] = [];
        for (let i = 0; i < 10; i++) if ((await shareFiles(g, i, cap)).has(sh)) holders.push(i);
        assertEquals(holders.length, 2, `share ${sh} on servers ${holders}`);
        assert(holders.includes(was));
      }
      // The file reads back from the repaired copies and the 8 good ones.
      assert(same(await readAll(g.grid().downloadImmutable(cap)), data));
      assert(!(await grid.repairImmutable(cap, { verify: true })).repaired, "nothing left to do");
    });

    await t.step("a verify cap cannot download; wrong caps are refused", async () => {
      const { cap } = await grid.uploadImmutable(randomBytes(100), base);
      const vcap = formatCap(await diminishCap(parseCap(cap)));
      await assertRejects(() => readAll(grid.downloadImmutable(vcap)), Error, "readcap");
      // Same key, other uebHash: no share matches.
      const c = parseCap(cap) as Extract<ReturnType<typeof parseCap>, { kind: "immutable-read" }>;
      const forged = formatCap({ ...c, uebHash: randomBytes(32) });
      await assertRejects(
        () => readAll(grid.downloadImmutable(forged)),
        Error,
        "not enough shares",
      );
    });
  } finally {
    await g.close();
  }
});

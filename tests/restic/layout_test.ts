/**
 * Why restic's data/ is sharded by two hex digits (docs/restic.md §3): the bytes one upload
 * rewrites. Each upload links one entry, and a directory is one mutable file re-published
 * whole, so its cost is the size of the directory holding the new pack. Measured with the real
 * directory encoder on entries shaped like restic's (64-hex names, CHK-R1 caps, size metadata).
 */
import { assert } from "../helpers/assert.ts";
import { formatCap, randomBytes } from "../../lib/crypto/mod.ts";
import { type DirEntry, encodeDirectory, MAX_MUTABLE_SIZE } from "../../lib/grid/mod.ts";
import { toHex } from "../../lib/codec/mod.ts";

function entry(): DirEntry {
  const size = 4_000_000 + Math.floor(Math.random() * 12_000_000);
  return {
    name: toHex(randomBytes(32)),
    readcap: formatCap({
      kind: "immutable-read",
      key: randomBytes(32),
      uebHash: randomBytes(32),
      k: 3,
      n: 10,
      size,
    }),
    metadata: { ctime: 1795613602, mtime: 1795613602, size },
  };
}

Deno.test("restic layout: a two-hex-digit shard rewrites ~1/256 of a flat data/ per upload", () => {
  const objects = 100_000;
  // The encoding is linear in the entries: measure a sample, scale to the whole repository
  // (encoding all 100,000 takes ~12 s, which is the point, but too slow for the suite).
  const sample = Array.from({ length: 2000 }, entry);
  const t0 = performance.now();
  const sampleBytes = encodeDirectory(sample, null).length;
  const perEntryMs = (performance.now() - t0) / sample.length;
  const flat = (sampleBytes / sample.length) * objects;
  // The shard a new pack lands in holds ~objects/256 entries (the names are uniform hashes).
  const shardEntries = sample.slice(0, Math.round(objects / 256));
  const t1 = performance.now();
  const shard = encodeDirectory(shardEntries, null).length;
  const shardMs = performance.now() - t1;
  const top = encodeDirectory(
    Array.from({ length: 256 }, (_, i) => ({
      name: i.toString(16).padStart(2, "0"),
      readcap: "shoal:DIR-R1:" + "a".repeat(100),
      metadata: { ctime: 1, mtime: 1 },
    })),
    null,
  ).length;
  console.log(
    `${objects} packs: flat data/ ${(flat / 1e6).toFixed(1)} MB rewritten per upload (encode ~${
      (perEntryMs * objects / 1000).toFixed(1)
    } s); sharded: one shard of ${shardEntries.length} entries, ${
      (shard / 1e3).toFixed(1)
    } KB (encode ${shardMs.toFixed(1)} ms); data/ itself ${
      (top / 1e3).toFixed(1)
    } KB, written only when a shard is first made`,
  );
  assert(flat > 20e6, "a flat directory of 100,000 packs is tens of megabytes");
  assert(flat < MAX_MUTABLE_SIZE, "and still under the mutable limit, so it would work, slowly");
  assert(shard * 100 < flat, "one shard is under 1% of the flat directory");
  assert(shard < 200_000, "a shard of a 100,000-pack repository stays under 200 KB");
});

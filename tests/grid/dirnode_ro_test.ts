/**
 * docs/security.md §2.15: a directory document's `ro` field is re-checked on
 * decode. A readcap-opened directory never yields a child writecap, and a
 * document whose read-only cap is write material (or whose `rw` does not
 * match its `ro`) is refused, whoever wrote it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as cbor } from "cborg";
import { utf8 } from "../../lib/codec/mod.ts";
import {
  aesCtrSync,
  type Cap,
  formatCap,
  parseCap,
  readcapOf,
  taggedHash,
  TAGS,
  writekeyFromSeed,
} from "../../lib/crypto/mod.ts";
import { decodeDirectory, DirectoryError, encodeDirectory } from "../../lib/grid/mod.ts";

const seed = (b: number) => new Uint8Array(32).fill(b);
const mutW = formatCap({ kind: "mutable-write", seed: seed(7) });
const dirW = formatCap({ kind: "dir-write", seed: seed(8) });
const mutR = formatCap(await readcapOf(parseCap(mutW)));
const dirR = formatCap(await readcapOf(parseCap(dirW)));
const writekey = writekeyFromSeed(seed(9));

/** rw bytes for `writecap` under the directory's writekey, as docs/directories.md §1. */
function rwFor(writecap: string): Uint8Array {
  const salt = new Uint8Array(16).fill(3);
  const ct = aesCtrSync(
    taggedHash(TAGS.dirEntryKey, writekey, salt),
    new Uint8Array(16),
    utf8(writecap),
  );
  const rw = new Uint8Array(16 + ct.length);
  rw.set(salt);
  rw.set(ct, 16);
  return rw;
}

/** A document as another implementation might write it: no checks at all. */
function foreignDoc(ro: string, rw: Uint8Array | null = null): Uint8Array {
  return cbor({ v: 1, meta: {}, entries: [{ name: "child", ro, rw, meta: {} }] });
}

function refused(bytes: Uint8Array, key: Uint8Array | null, re: RegExp): void {
  assert.throws(
    () => decodeDirectory(bytes, key),
    (e: unknown) => e instanceof DirectoryError && re.test(e.message),
  );
}

Deno.test("dirnode: a writecap in `ro` is refused, with and without the writekey", () => {
  for (
    const w of [
      mutW,
      dirW,
      ` ${mutW}`,
      mutW.toLowerCase(),
      dirW.replace("W1", "W2"),
      "shoal:MUT-W1",
    ]
  ) {
    refused(foreignDoc(w), null, /read-only cap is a writecap/);
    refused(foreignDoc(w), writekey, /read-only cap is a writecap/);
    refused(foreignDoc(w, rwFor(mutW)), writekey, /read-only cap is a writecap/);
  }
  // Our own encoder refuses to write one.
  assert.throws(
    () => encodeDirectory([{ name: "x", readcap: mutW, metadata: {} }], writekey),
    DirectoryError,
  );
});

Deno.test("dirnode: `rw` must be a writecap of the same type as `ro`", () => {
  // Matching pairs decode; the readcap holder sees only the readcap.
  for (const [ro, w] of [[mutR, mutW], [dirR, dirW]]) {
    const doc = foreignDoc(ro, rwFor(w));
    assert.deepEqual(decodeDirectory(doc, writekey)[0], {
      name: "child",
      readcap: ro,
      writecap: w,
      metadata: {},
    });
    assert.deepEqual(decodeDirectory(doc, null)[0], { name: "child", readcap: ro, metadata: {} });
  }
  refused(foreignDoc(mutR, rwFor(dirW)), writekey, /does not match/);
  refused(foreignDoc(dirR, rwFor(mutR)), writekey, /does not match/);
  refused(foreignDoc(mutR, rwFor("shoal:MUT-W1:notbase32")), writekey, /not a valid cap/);
});

Deno.test("dirnode: property — nothing a readcap holder decodes is a writecap", () => {
  const capText = fc.oneof(
    fc.constantFrom(mutW, dirW, mutR, dirR, "r", "shoal:", "shoal:DIR-W", "SHOAL:dir-w1:x"),
    fc.string(),
    fc.constantFrom(mutW, dirW).chain((w) =>
      fc.tuple(fc.nat(w.length), fc.constantFrom(" ", "\t", "\n", "x", "")).map(([i, c]) =>
        w.slice(0, i) + c + w.slice(i)
      )
    ),
  );
  fc.assert(
    fc.property(capText, fc.boolean(), (ro, withRw) => {
      let entries;
      try {
        entries = decodeDirectory(foreignDoc(ro, withRw ? rwFor(mutW) : null), null);
      } catch (e) {
        assert.ok(e instanceof DirectoryError);
        return;
      }
      for (const e of entries) {
        assert.equal(e.writecap, undefined);
        let cap: Cap | null = null;
        try {
          cap = parseCap(e.readcap.trim());
        } catch { /* not a cap */ }
        assert.ok(!cap?.kind.endsWith("-write"), `writecap leaked through ro: ${e.readcap}`);
      }
    }),
    { numRuns: 300 },
  );
});

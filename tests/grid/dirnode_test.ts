/** Directory contents (docs/directories.md) against tests/vectors/directories.json. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as cbor } from "cborg";
import { decodeCbor, fromHex, toHex, utf8 } from "../../lib/codec/mod.ts";
import { aesCtr, taggedHash, TAGS, writekeyFromSeed } from "../../lib/crypto/mod.ts";
import {
  decodeDirectory,
  decodeDirectoryDoc,
  DirectoryError,
  type DirEntry,
  encodeDirectory,
  MAX_NAME_BYTES,
  normalizeName,
} from "../../lib/grid/mod.ts";

const V = JSON.parse(
  Deno.readTextFileSync(new URL("../vectors/directories.json", import.meta.url)),
);
const writekey = fromHex(V.writekey);

/** The vectors' random source: call c (0-based) returns bytes all equal to c + 1. */
function counterRandom() {
  let c = 0;
  return (n: number) => new Uint8Array(n).fill(++c);
}

Deno.test("vectors: the writekey comes from the seed", () => {
  assert.equal(toHex(writekeyFromSeed(fromHex(V.seed))), V.writekey);
});

Deno.test("vectors: encodeDirectory gives the vector bytes; decoding with and without the writekey", async () => {
  assert(V.valid.length >= 3);
  for (const v of V.valid) {
    const bytes = await encodeDirectory(v.input, writekey, v.meta, counterRandom());
    assert.equal(toHex(bytes), v.cbor, v.name);
    const withKey = await decodeDirectoryDoc(bytes, writekey);
    assert.deepEqual(withKey.entries, v.decodedWithWritekey, v.name);
    assert.deepEqual(withKey.meta, v.meta, v.name);
    assert.deepEqual(await decodeDirectory(bytes, null), v.decodedWithoutWritekey, v.name);
    for (const e of await decodeDirectory(bytes, null)) assert.equal(e.writecap, undefined);
    // Every writecap of the input comes back with the writekey, and is not in the bytes in clear.
    for (const e of v.input as DirEntry[]) {
      const out = withKey.entries.find((x) => x.name === e.name.normalize("NFC"))!;
      assert.equal(out.writecap, e.writecap);
      assert.equal(out.readcap, e.readcap);
      if (e.writecap) assert(!v.cbor.includes(toHex(utf8(e.writecap))), "writecap stored in clear");
    }
  }
});

Deno.test("vectors: rw is salt || AES-256-CTR(taggedHash(dir-entry-key, writekey, salt), writecap)", async () => {
  const v = V.valid.find((x: { input: DirEntry[] }) => x.input.some((e) => e.writecap))!;
  const doc = decodeCbor(fromHex(v.cbor)) as { entries: { name: string; rw: Uint8Array | null }[] };
  let salts = 0;
  for (const raw of doc.entries) {
    const want = v.decodedWithWritekey.find((e: DirEntry) => e.name === raw.name);
    if (!want.writecap) {
      assert.equal(raw.rw, null);
      continue;
    }
    const salt = raw.rw!.subarray(0, 16);
    assert.deepEqual(salt, new Uint8Array(16).fill(++salts)); // the counter, in sorted-entry order
    const key = taggedHash(TAGS.dirEntryKey, writekey, salt);
    assert.deepEqual(
      await aesCtr(key, new Uint8Array(16), utf8(want.writecap)),
      raw.rw!.subarray(16),
    );
  }
  assert(salts >= 1);
});

Deno.test("names are NFC-normalized on encode; NFD and NFC input give the same bytes", async () => {
  const nfd = [{ name: "Cafe\u0301", readcap: "r", metadata: {} }];
  const nfc = [{ name: "Caf\u00e9", readcap: "r", metadata: {} }];
  const a = await encodeDirectory(nfd, null, {}, counterRandom());
  assert.deepEqual(a, await encodeDirectory(nfc, null, {}, counterRandom()));
  assert.equal((await decodeDirectory(a, null))[0].name, "Caf\u00e9");
  assert.equal(normalizeName("A\u030a"), "\u00c5");
  // NFD and NFC forms of one name are the same name.
  assert.throws(
    () => encodeDirectory([...nfd, ...nfc], null),
    (e: unknown) => e instanceof DirectoryError && e.message.includes("duplicate"),
  );
});

Deno.test("entries are sorted in UTF-16 code-unit order", async () => {
  const names = ["\uff01", "\u{1F600}", "b", "B", "\u00e4", "a"];
  const bytes = await encodeDirectory(
    names.map((name) => ({ name, readcap: "r", metadata: {} })),
    null,
  );
  assert.deepEqual((await decodeDirectory(bytes, null)).map((e) => e.name), [
    "B",
    "a",
    "b",
    "\u00e4",
    "\u{1F600}",
    "\uff01",
  ]);
});

Deno.test("encode refuses invalid names, duplicates, and a writecap without the writekey", async () => {
  const bad = [
    "",
    "a/b",
    "\u0000",
    "x\u001f",
    "\u007f",
    ".",
    "..",
    "a".repeat(MAX_NAME_BYTES + 1),
    "\u00e9".repeat(513),
  ];
  for (const name of bad) {
    assert.throws(
      () => encodeDirectory([{ name, readcap: "r", metadata: {} }], null),
      DirectoryError,
      JSON.stringify(name),
    );
  }
  await encodeDirectory([{ name: "a".repeat(MAX_NAME_BYTES), readcap: "r", metadata: {} }], null);
  await encodeDirectory([{ name: "\u00e9".repeat(512), readcap: "r", metadata: {} }], null);
  assert.throws(
    () =>
      encodeDirectory([{ name: "a", readcap: "r", metadata: {} }, {
        name: "a",
        readcap: "s",
        metadata: {},
      }], null),
    DirectoryError,
  );
  assert.throws(
    () => encodeDirectory([{ name: "a", readcap: "r", writecap: "w", metadata: {} }], null),
    (e: unknown) => e instanceof DirectoryError && e.message.includes("writekey"),
  );
});

Deno.test("vectors: every rejection rule of §3 raises DirectoryError", async () => {
  assert(V.invalid.length >= 30);
  for (const c of V.invalid) {
    const bytes = fromHex(c.cbor);
    assert.throws(
      () => decodeDirectoryDoc(bytes, c.needsWritekey ? writekey : null),
      (e: unknown) => e instanceof DirectoryError && e.message === c.error,
      c.name,
    );
    // Rules that do not need the writekey also hold with it.
    if (!c.needsWritekey) {
      assert.throws(() => decodeDirectoryDoc(bytes, writekey), DirectoryError, c.name);
    } // ...and the one that does is accepted without it (the writecap is simply not decrypted).
    else assert.equal((await decodeDirectory(bytes, null))[0].writecap, undefined);
  }
});

Deno.test("decoding tolerates an absent rw and unknown keys (both ignored)", async () => {
  const bytes = cbor({
    v: 1,
    meta: {},
    entries: [{ name: "a", ro: "r", meta: { x: 1 }, future: true }],
    future: [1, 2],
  });
  assert.deepEqual(await decodeDirectory(bytes, writekey), [{
    name: "a",
    readcap: "r",
    metadata: { x: 1 },
  }]);
});

Deno.test("decoding with another directory's writekey does not yield the writecap", async () => {
  const v = V.valid.find((x: { input: DirEntry[] }) => x.input.some((e) => e.writecap))!;
  const other = writekeyFromSeed(new Uint8Array(32).fill(0xd2));
  let entries: DirEntry[] | null = null;
  try {
    entries = await decodeDirectory(fromHex(v.cbor), other);
  } catch (e) {
    assert(e instanceof DirectoryError && e.message.includes("does not decrypt"));
  }
  for (const e of entries ?? []) {
    const want = v.decodedWithWritekey.find((x: DirEntry) => x.name === e.name);
    assert.notEqual(e.writecap, want.writecap);
  }
});

function checkDecoded(entries: DirEntry[]): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    assert.equal(normalizeName(e.name), e.name);
    assert.equal(typeof e.readcap, "string");
    assert(e.metadata && typeof e.metadata === "object" && !Array.isArray(e.metadata));
    if (i > 0) assert(entries[i - 1].name < e.name);
  }
}

Deno.test("fuzz: garbage bytes are refused only with DirectoryError", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), fc.boolean(), async (b, withKey) => {
      try {
        checkDecoded(await decodeDirectory(b, withKey ? writekey : null));
      } catch (e) {
        if (!(e instanceof DirectoryError)) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

const anyValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 24 }),
  fc.constant([]),
  fc.constant({}),
);
const nameArb = fc.oneof(
  fc.constantFrom(
    "a",
    "b",
    "Cafe\u0301",
    "Caf\u00e9",
    ".",
    "..",
    "a/b",
    "",
    "\u0000",
    "\u{1F600}",
    "\uff01",
  ),
  fc.string({ maxLength: 6, unit: "grapheme" }),
  anyValue,
);
const entryArb = fc.record(
  {
    name: nameArb,
    ro: fc.oneof(fc.string({ maxLength: 10 }), anyValue),
    rw: fc.oneof(fc.constant(null), fc.uint8Array({ minLength: 15, maxLength: 40 }), anyValue),
    meta: fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), anyValue, { maxKeys: 3 }), anyValue),
  },
  { requiredKeys: [] },
);
const docArb = fc.record(
  {
    v: fc.oneof(fc.constant(1), anyValue),
    meta: fc.oneof(fc.constant({}), anyValue),
    entries: fc.oneof(fc.array(entryArb, { maxLength: 4 }), anyValue),
  },
  { requiredKeys: [] },
);

Deno.test("fuzz: directory-shaped documents are refused only with DirectoryError; accepted ones are valid", async () => {
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(docArb, fc.boolean(), async (doc, withKey) => {
      let bytes: Uint8Array;
      try {
        bytes = cbor(doc);
      } catch {
        return; // not encodable (e.g. -0 or a lone surrogate): not an input
      }
      try {
        const entries = await decodeDirectory(bytes, withKey ? writekey : null);
        checkDecoded(entries);
        accepted++;
      } catch (e) {
        if (!(e instanceof DirectoryError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
  assert(
    accepted > 25,
    `only ${accepted} generated documents were valid; the generator is too weak`,
  );
});

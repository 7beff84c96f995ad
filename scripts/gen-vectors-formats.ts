/**
 * Regenerates tests/vectors/mutable.json, tests/vectors/directories.json and
 * tests/vectors/discovery.json.
 *
 *   deno run -A scripts/gen-vectors-formats.ts
 *
 * Every input is fixed (seeds, salts, contents, times, and a counter in place
 * of the random source), so the files are reproducible byte for byte.
 *
 * Mutable shares, directory documents and announcements are built here by a
 * second, plain implementation written from docs/mutable-files.md,
 * docs/directories.md and docs/discovery.md (node:crypto SHA-256, AES-256-CTR
 * and Ed25519, a recursive hash tree, `cborg` called directly). Only the
 * erasure code (pinned by tests/vectors/erasure.json), cap strings (pinned by
 * caps.json) and storage URLs (pinned by storage-url.json) come from lib/.
 * The generator then checks the library against what it built and stops with
 * an error if they differ, so a divergence between spec and code shows here.
 * Error fragments of the invalid cases are what the library reports.
 */
import { createCipheriv, createHash, createPrivateKey, sign as edSign } from "node:crypto";
import { encode as cbor } from "cborg";
import { base32Encode, encodeSegment, fromHex, toHex } from "../lib/codec/mod.ts";
import { type Cap, formatCap } from "../lib/crypto/mod.ts";
import { formatStorageUrl, type StorageUrl } from "../lib/storage/mod.ts";
import {
  decodeDirectoryDoc,
  type DirEntry,
  encodeDirectory,
  encodeVersion,
  unpackShare,
  writeKeysFromSeed,
} from "../lib/grid/mod.ts";
import {
  decodeAnnouncement,
  encodeAnnouncement,
  GSD_ENTRY_PREFIX,
  gsdLinks,
  parseIntroductionText,
} from "../lib/discovery/mod.ts";

const enc = new TextEncoder();
const cat = (...p: Uint8Array[]) => {
  const out = new Uint8Array(p.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const x of p) (out.set(x, o), o += x.length);
  return out;
};
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);
const seq = (n: number, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const be = (n: number | bigint, size: number) => {
  const b = new Uint8Array(size);
  let v = BigInt(n);
  for (let i = size - 1; i >= 0; i--) (b[i] = Number(v & 0xffn), v >>= 8n);
  return b;
};
function fail(msg: string): never {
  throw new Error(`gen-vectors-formats: ${msg}`);
}
function same(a: Uint8Array, b: Uint8Array, what: string): void {
  if (toHex(a) !== toHex(b)) fail(`library disagrees with the reference on ${what}`);
}

// ---- reference primitives (docs/crypto.md §2, §5, §7, §8) ----
function th(tag: string, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of [enc.encode(tag), ...parts]) {
    h.update(enc.encode(`${p.length}:`)).update(p).update(",");
  }
  return new Uint8Array(h.digest());
}
const T = "shoal:v1:";
function edKey(seed: Uint8Array) {
  const der = cat(fromHex("302e020100300506032b657004220420"), seed);
  return createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
}
function publicKey(seed: Uint8Array): Uint8Array {
  const jwk = edKey(seed).export({ format: "jwk" });
  return new Uint8Array(Buffer.from(jwk.x as string, "base64url"));
}
function keys(seed: Uint8Array) {
  const writekey = th(T + "writekey", seed);
  const readkey = th(T + "readkey", writekey);
  const pub = publicKey(seed);
  const fingerprint = th(T + "fingerprint", pub);
  return {
    seed,
    publicKey: pub,
    writekey,
    readkey,
    storageIndex: th(T + "storage-index", fingerprint).slice(0, 16),
    fingerprint,
  };
}
function ctr(key: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-256-ctr", key, new Uint8Array(16));
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}
/** Levels of the padded tree, level 0 = leaves + fillers. */
function treeLevels(leaves: Uint8Array[]): Uint8Array[][] {
  let p = 1;
  while (p < leaves.length) p *= 2;
  const level0 = [...leaves];
  for (let i = leaves.length; i < p; i++) level0.push(th(T + "hash-tree-empty", be(i, 8)));
  const levels = [level0];
  while (levels[levels.length - 1].length > 1) {
    const prev = levels[levels.length - 1];
    const up = [];
    for (let j = 0; j < prev.length / 2; j++) {
      up.push(th(T + "hash-tree-node", prev[2 * j], prev[2 * j + 1]));
    }
    levels.push(up);
  }
  return levels;
}

// ---- mutable.json (docs/mutable-files.md §1, §2) ----
function refEncodeVersion(
  seed: Uint8Array,
  contents: Uint8Array,
  seqnum: number,
  salt: Uint8Array,
  k: number,
  n: number,
) {
  const K = keys(seed);
  const C = ctr(th(T + "mutable-data-key", K.readkey, salt), contents);
  const blocks = k === 1 ? Array.from({ length: n }, () => C) : encodeSegment(C, k, n);
  const leaves = blocks.map((b, i) =>
    th(T + "mutable-share-leaf", be(i, 4), th(T + "mutable-block", b))
  );
  const levels = treeLevels(leaves);
  const root = levels[levels.length - 1][0];
  const prefix = cat(
    new Uint8Array([1]),
    be(seqnum, 8),
    root,
    salt,
    be(k, 2),
    be(n, 4),
    be(contents.length, 8),
  );
  const signature = new Uint8Array(edSign(null, th(T + "mutable-signature", prefix), edKey(seed)));
  const shares = blocks.map((b, i) => {
    const needed = levels.slice(0, -1).map((lv, l) => lv[(i >> l) ^ 1]);
    return cat(
      prefix,
      K.publicKey,
      signature,
      be(i, 4),
      new Uint8Array([needed.length]),
      ...needed,
      b,
    );
  });
  return { K, prefix, signature, root, shares, blocks };
}

const MUTABLE_CASES = [
  {
    name: "1-of-1, short contents",
    seed: seq(32),
    contents: "hello, shoal",
    seqnum: 1,
    salt: fill(16, 0x11),
    k: 1,
    n: 1,
  },
  {
    name: "1-of-5 (replication), empty contents",
    seed: fill(32, 0x42),
    contents: "",
    seqnum: 7,
    salt: seq(16, 0xa0),
    k: 1,
    n: 5,
  },
  {
    name: "1-of-5 (replication), seqnum above 2^32",
    seed: fill(32, 0x42),
    contents: "grid service announcement",
    seqnum: 2 ** 40 + 5,
    salt: seq(16, 0x30),
    k: 1,
    n: 5,
  },
  {
    name: "3-of-10, contents not a multiple of k",
    seed: seq(32, 0x80),
    contents: "The quick brown fox jumps over the lazy dog",
    seqnum: 2,
    salt: fill(16, 0xee),
    k: 3,
    n: 10,
  },
];

async function genMutable() {
  const valid = [];
  for (const c of MUTABLE_CASES) {
    const contents = enc.encode(c.contents);
    const ref = refEncodeVersion(c.seed, contents, c.seqnum, c.salt, c.k, c.n);
    const lib = await encodeVersion(
      await writeKeysFromSeed(c.seed),
      contents,
      c.seqnum,
      c.salt,
      c.k,
      c.n,
    );
    same(lib.prefix, ref.prefix, `${c.name}: prefix`);
    same(lib.signature, ref.signature, `${c.name}: signature`);
    same(lib.tree.root, ref.root, `${c.name}: root`);
    ref.shares.forEach((s, i) => same(lib.share(i), s, `${c.name}: share ${i}`));
    valid.push({
      name: c.name,
      seed: toHex(c.seed),
      contents: c.contents,
      seqnum: c.seqnum,
      salt: toHex(c.salt),
      k: c.k,
      n: c.n,
      publicKey: toHex(ref.K.publicKey),
      readkey: toHex(ref.K.readkey),
      storageIndex: toHex(ref.K.storageIndex),
      fingerprint: toHex(ref.K.fingerprint),
      blockLength: ref.blocks[0].length,
      root: toHex(ref.root),
      prefix: toHex(ref.prefix),
      checkstring: toHex(ref.prefix.slice(0, 57)),
      signature: toHex(ref.signature),
      shares: ref.shares.map(toHex),
    });
  }
  // Malformed shares, derived from the valid ones. `error` is a fragment of the library's message.
  const s1 = fromHex(valid[0].shares[0]); // 1-of-1
  const s5 = fromHex(valid[2].shares[3]); // 1-of-5, share 3
  const s10 = fromHex(valid[3].shares[4]); // 3-of-10, share 4
  const edit = (b: Uint8Array, f: (x: Uint8Array, dv: DataView) => void) => {
    const x = new Uint8Array(b);
    f(x, new DataView(x.buffer));
    return x;
  };
  const invalidCases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["truncated inside the signed prefix (70 bytes)", s10.slice(0, 70)],
    ["truncated inside the fixed header (171 bytes)", s10.slice(0, 171)],
    ["truncated inside the needed hashes", s10.slice(0, 172 + 32 * 2)],
    ["truncated block (one byte short)", s10.slice(0, s10.length - 1)],
    ["block one byte too long", cat(s10, new Uint8Array([0]))],
    ["1-of-1 block one byte short", s1.slice(0, s1.length - 1)],
    ["format version 0", edit(s10, (x) => (x[0] = 0))],
    ["format version 2", edit(s10, (x) => (x[0] = 2))],
    ["m = 3 where n = 10 needs 4", edit(s10, (x) => (x[171] = 3))],
    ["m = 1 where n = 1 needs 0", cat(edit(s1, (x) => (x[171] = 1)), fill(32, 0))],
    ["share number = n", edit(s10, (_x, dv) => dv.setUint32(167, 10))],
    ["share number 5 of a 1-of-5 version", edit(s5, (_x, dv) => dv.setUint32(167, 5))],
    ["share number 2^32-1", edit(s5, (_x, dv) => dv.setUint32(167, 0xffffffff))],
    ["k = 0", edit(s10, (_x, dv) => dv.setUint16(57, 0))],
    ["k > n", edit(s10, (_x, dv) => dv.setUint16(57, 11))],
    ["n = 257 with k = 3", edit(s10, (_x, dv) => dv.setUint32(59, 257))],
    ["n = 2^24 + 1 with k = 1", edit(s5, (_x, dv) => dv.setUint32(59, 2 ** 24 + 1))],
  ];
  const invalid = invalidCases.map(([name, bytes]) => {
    try {
      unpackShare(bytes);
    } catch (e) {
      if ((e as Error).name !== "MutableShareError") fail(`${name}: threw ${(e as Error).name}`);
      return { name, share: toHex(bytes), error: (e as Error).message };
    }
    return fail(`invalid share case '${name}' was accepted by unpackShare`);
  });
  return {
    description:
      "Mutable share vectors (docs/mutable-files.md). `valid`: a version encoded from the seed, " +
      "contents (UTF-8), seqnum, salt and k-of-n; `prefix` is the 71-byte signed prefix, " +
      "`checkstring` its first 57 bytes, `shares[i]` the whole share i (hex). `invalid`: shares " +
      "a reader MUST refuse at parse time; `error` is this implementation's MutableShareError " +
      "message. Regenerate with `deno run -A scripts/gen-vectors-formats.ts`.",
    valid,
    invalid,
  };
}

// ---- directories.json (docs/directories.md) ----
/** The deterministic random source: call number c (0-based) returns n bytes of value c + 1. */
function counterRandom() {
  let c = 0;
  return (n: number) => fill(n, ++c);
}

function capOf(kind: Cap["kind"], seedByte: number): string {
  const K = keys(fill(32, seedByte));
  if (kind.endsWith("-write")) return formatCap({ kind, seed: K.seed } as Cap);
  if (kind.endsWith("-read")) {
    return formatCap({ kind, readkey: K.readkey, fingerprint: K.fingerprint } as Cap);
  }
  return formatCap({ kind, storageIndex: K.storageIndex, fingerprint: K.fingerprint } as Cap);
}
const CHK_READ = formatCap({
  kind: "immutable-read",
  key: fill(32, 0x5a),
  uebHash: fill(32, 0xa5),
  k: 3,
  n: 10,
  size: 12345,
});

interface DirCaseEntry {
  name: string;
  readcap: string;
  writecap?: string;
  metadata: Record<string, unknown>;
}
const DIR_SEED = fill(32, 0xd1);
const DIR_CASES: { name: string; meta: Record<string, unknown>; entries: DirCaseEntry[] }[] = [
  { name: "empty directory", meta: {}, entries: [] },
  {
    name: "two entries, NFD input name, writecap present and absent",
    meta: {},
    entries: [
      {
        name: "file.txt",
        readcap: capOf("mutable-read", 0x01),
        writecap: capOf("mutable-write", 0x01),
        metadata: { ctime: 1700000000, mtime: 1700000100 },
      },
      {
        name: "Cafe\u0301", // NFD: stored as "Caf\u00e9"
        readcap: CHK_READ,
        metadata: { ctime: 1700000200, mtime: 1700000200 },
      },
    ],
  },
  {
    name: "UTF-16 code-unit order, subdirectory writecap, extra metadata, directory meta",
    meta: { issued: 1700000000, expires: 1700604800 },
    entries: [
      { name: "\uff01bang", readcap: capOf("dir-read", 0x02), metadata: {} },
      {
        name: "\u{1F600}smile",
        readcap: capOf("dir-read", 0x03),
        writecap: capOf("dir-write", 0x03),
        metadata: { ctime: 1, mtime: 2, note: "kept", tags: ["a", "b"], nested: { x: 1 } },
      },
      { name: "Zebra", readcap: capOf("mutable-read", 0x04), metadata: { mtime: 3 } },
      { name: "a b-c_d.e~", readcap: CHK_READ, metadata: { ctime: 4, mtime: 4 } },
      {
        name: "\u00e4",
        readcap: capOf("mutable-read", 0x05),
        writecap: capOf("mutable-write", 0x05),
        metadata: {},
      },
    ],
  },
];

function refDirectory(
  entries: DirCaseEntry[],
  writekey: Uint8Array,
  meta: Record<string, unknown>,
): Uint8Array {
  const random = counterRandom();
  const sorted = entries.map((e) => ({ ...e, name: e.name.normalize("NFC") })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0
  );
  const out = sorted.map((e) => {
    let rw: Uint8Array | null = null;
    if (e.writecap !== undefined) {
      const salt = random(16);
      rw = cat(salt, ctr(th(T + "dir-entry-key", writekey, salt), enc.encode(e.writecap)));
    }
    return { name: e.name, ro: e.readcap, rw, meta: e.metadata };
  });
  return cbor({ v: 1, meta, entries: out });
}

async function genDirectories() {
  const K = keys(DIR_SEED);
  const valid = [];
  for (const c of DIR_CASES) {
    const ref = refDirectory(c.entries, K.writekey, c.meta);
    const lib = await encodeDirectory(c.entries as DirEntry[], K.writekey, c.meta, counterRandom());
    same(lib, ref, `directory '${c.name}'`);
    const withKey = await decodeDirectoryDoc(ref, K.writekey);
    const withoutKey = await decodeDirectoryDoc(ref, null);
    valid.push({
      name: c.name,
      meta: c.meta,
      input: c.entries,
      cbor: toHex(ref),
      decodedWithWritekey: withKey.entries,
      decodedWithoutWritekey: withoutKey.entries,
    });
  }
  // Invalid documents. `needsWritekey`: refused only when decoding with the writekey.
  const ro = capOf("mutable-read", 0x01);
  const e = (name: unknown, extra: Record<string, unknown> = {}) => ({
    name,
    ro,
    rw: null,
    meta: {},
    ...extra,
  });
  const doc = (entries: unknown[], top: Record<string, unknown> = {}) =>
    cbor({ v: 1, meta: {}, entries, ...top });
  const badSalt = fill(16, 0x77);
  const badRw = cat(
    badSalt,
    ctr(th(T + "dir-entry-key", K.writekey, badSalt), new Uint8Array([0xff, 0xfe, 0x80])),
  );
  const cases: [string, Uint8Array, boolean?][] = [
    ["not CBOR (a lone break byte)", new Uint8Array([0xff])],
    ["empty input", new Uint8Array(0)],
    ["two CBOR items", cat(doc([]), doc([]))],
    ["top level is an array", cbor([1, {}, []])],
    ["version 2", cbor({ v: 2, meta: {}, entries: [] })],
    ["version missing", cbor({ meta: {}, entries: [] })],
    ["entries is a map", cbor({ v: 1, meta: {}, entries: {} })],
    ["entries missing", cbor({ v: 1, meta: {} })],
    ["meta is an array", cbor({ v: 1, meta: [], entries: [] })],
    ["meta missing", cbor({ v: 1, entries: [] })],
    ["entry is an array", doc([["a", ro, null, {}]])],
    ["entry lacks name", doc([{ ro, rw: null, meta: {} }])],
    ["entry lacks ro", doc([{ name: "a", rw: null, meta: {} }])],
    ["entry lacks meta", doc([{ name: "a", ro, rw: null }])],
    ["name is a number", doc([e(7)])],
    ["name is bytes", doc([e(enc.encode("a"))])],
    ["ro is bytes", doc([e("a", { ro: enc.encode(ro) })])],
    ["meta is an array", doc([e("a", { meta: [] })])],
    ["name not NFC", doc([e("Cafe\u0301")])],
    ["empty name", doc([e("")])],
    ["name contains '/'", doc([e("a/b")])],
    ["name contains U+0000", doc([e("a\u0000b")])],
    ["name contains U+001F", doc([e("a\u001fb")])],
    ["name contains U+007F", doc([e("a\u007fb")])],
    ["name '.'", doc([e(".")])],
    ["name '..'", doc([e("..")])],
    ["name of 1025 UTF-8 bytes", doc([e("a".repeat(1025))])],
    ["entries out of order", doc([e("b"), e("a")])],
    ["entries out of UTF-16 order (code-point order used)", doc([e("\uff01"), e("\u{1F600}")])],
    ["repeated name", doc([e("a"), e("a")])],
    ["rw of 16 bytes", doc([e("a", { rw: fill(16, 1) })])],
    ["rw is text", doc([e("a", { rw: "secret" })])],
    ["rw is false", doc([e("a", { rw: false })])],
    ["rw does not decrypt to UTF-8", doc([e("a", { rw: badRw })]), true],
  ];
  const invalid = [];
  for (const [name, bytes, needsWritekey] of cases) {
    try {
      await decodeDirectoryDoc(bytes, needsWritekey ? K.writekey : null);
    } catch (err) {
      if ((err as Error).name !== "DirectoryError") fail(`${name}: threw ${(err as Error).name}`);
      invalid.push({
        name,
        cbor: toHex(bytes),
        needsWritekey: needsWritekey ?? false,
        error: (err as Error).message,
      });
      continue;
    }
    fail(`invalid directory case '${name}' was accepted`);
  }
  return {
    description:
      "Directory vectors (docs/directories.md). `writekey` is the directory's writekey (from " +
      "`seed`). The random source is a counter: call c (0-based) returns bytes all equal to c+1 " +
      "(so the first encrypted writecap's salt is 16 bytes of 0x01). `valid`: `input` entries " +
      "(names as given, possibly NFD) and directory `meta` encode to `cbor`, which decodes to " +
      "`decodedWithWritekey` / `decodedWithoutWritekey` (readcap, writecap, metadata). " +
      "`invalid`: documents decodeDirectory MUST refuse (with the writekey when `needsWritekey`); " +
      "`error` is this implementation's DirectoryError message.",
    seed: toHex(DIR_SEED),
    writekey: toHex(K.writekey),
    valid,
    invalid,
  };
}

// ---- discovery.json (docs/discovery.md) ----
function url(pinByte: number, swissByte: number, locations: string[]): StorageUrl {
  return { pin: fill(32, pinByte), swissnum: fill(32, swissByte), locations };
}
async function genDiscovery() {
  const gsdRead = capOf("dir-read", 0x61);
  const u1 = formatStorageUrl(url(0x01, 0x71, ["127.0.0.1:7001"]));
  const u2 = formatStorageUrl(url(0x02, 0x72, ["storage.example.org:443", "[::1]:7002"]));
  const validTexts = [
    `${gsdRead},${u1}`,
    `${gsdRead},${u1},${u2}`,
    `  ${gsdRead},${u2}\n`, // leading/trailing whitespace is ignored
  ];
  const introValid = validTexts.map((text) => {
    const p = parseIntroductionText(text);
    return {
      text,
      gsdReadcap: formatCap(p.gsdReadcap),
      storageUrls: p.storageUrls.map((u) => ({
        pin: toHex(u.pin),
        swissnum: toHex(u.swissnum),
        locations: u.locations,
      })),
    };
  });
  const introInvalid = [
    { name: "empty", text: "", error: "introduction text is empty" },
    { name: "whitespace only", text: " \t\n ", error: "introduction text is empty" },
    { name: "space inside", text: `${gsdRead}, ${u1}`, error: "contains whitespace" },
    { name: "line break inside", text: `${gsdRead},\n${u1}`, error: "contains whitespace" },
    { name: "readcap only", text: gsdRead, error: "at least one storage URL" },
    {
      name: "part 1 not a cap",
      text: `hello,${u1}`,
      error: "part 1 (the GSD readcap) is not a valid cap",
    },
    { name: "part 1 empty", text: `,${u1}`, error: "part 1 (the GSD readcap) is not a valid cap" },
    {
      name: "part 1 a mutable-file readcap",
      text: `${capOf("mutable-read", 0x61)},${u1}`,
      error: "part 1 must be a directory readcap (DIR-R1), not a mutable-read cap",
    },
    {
      name: "part 1 a directory verify cap",
      text: `${capOf("dir-verify", 0x61)},${u1}`,
      error: "not a dir-verify cap",
    },
    {
      name: "part 1 the GSD writecap",
      text: `${capOf("dir-write", 0x61)},${u1}`,
      error: "never share it",
    },
    { name: "storage URL first", text: `${u1},${gsdRead}`, error: "part 1 (the GSD readcap)" },
    {
      name: "bad storage URL at part 2",
      text: `${gsdRead},https://example.org`,
      error: "part 2 (storage URL 1) is not a valid storage URL",
    },
    {
      name: "bad storage URL at part 3",
      text: `${gsdRead},${u1},${u2.replace("@", "#")}`,
      error: "part 3 (storage URL 2) is not a valid storage URL",
    },
    {
      name: "empty part 3 (trailing comma)",
      text: `${gsdRead},${u1},`,
      error: "part 3 (storage URL 2)",
    },
    {
      name: "a second readcap at part 2",
      text: `${gsdRead},${gsdRead}`,
      error: "part 2 (storage URL 1)",
    },
  ];
  for (const c of introInvalid) {
    try {
      parseIntroductionText(c.text);
    } catch (e) {
      if (!(e as Error).message.includes(c.error)) {
        fail(`introduction '${c.name}': got '${(e as Error).message}'`);
      }
      continue;
    }
    fail(`introduction '${c.name}' was accepted`);
  }
  // GSA (docs/discovery.md §4)
  const serverId = fill(32, 0x01);
  const gsaUrls = [
    formatStorageUrl(url(0x01, 0x71, ["127.0.0.1:7001"])),
    formatStorageUrl(url(0x01, 0x71, ["node1.example.org:7001", "[::1]:7001"])),
  ];
  const fixed = {
    v: 1,
    nickname: "s1",
    serverId,
    software: "shoal/0.1.0",
    announced: 1700000000,
    services: [{ type: "storage", storageUrls: [gsaUrls[0]] }],
  };
  const gsaCases = [
    { name: "one storage URL", doc: fixed },
    {
      name: "two storage URLs and an unknown service type (carried, not failing)",
      doc: {
        ...fixed,
        nickname: "n\u00f6de \u{1F600}",
        services: [
          { type: "storage", storageUrls: gsaUrls },
          { type: "web-gateway", url: "https://127.0.0.1:3456/", weight: 2 },
        ],
      },
    },
    {
      name: "no storage service (allowed; such a server offers no storage)",
      doc: { ...fixed, services: [] },
    },
  ];
  const gsaValid = [];
  for (const c of gsaCases) {
    const bytes = cbor(c.doc);
    const a = decodeAnnouncement(bytes);
    same(encodeAnnouncement(a), bytes, `GSA '${c.name}'`);
    gsaValid.push({
      name: c.name,
      cbor: toHex(bytes),
      nickname: a.nickname,
      serverId: toHex(a.serverId),
      software: a.software,
      announced: a.announced,
      storageUrls: a.storage ? a.storage.storageUrls.map(formatStorageUrl) : null,
      otherServices: a.otherServices,
    });
  }
  const otherPin = formatStorageUrl(url(0x02, 0x71, ["127.0.0.1:7001"]));
  const gsaBad: [string, unknown][] = [
    ["version 2", { ...fixed, v: 2 }],
    ["version missing", { ...fixed, v: undefined }],
    ["not a map", [1, "s1"]],
    ["nickname missing", { ...fixed, nickname: undefined }],
    ["nickname empty", { ...fixed, nickname: "" }],
    ["nickname of 65 characters", { ...fixed, nickname: "n".repeat(65) }],
    ["nickname with a control character", { ...fixed, nickname: "s\u00071" }],
    ["nickname with a C1 control (U+0085)", { ...fixed, nickname: "s\u00851" }],
    ["nickname with a C1 control (U+009B, CSI)", { ...fixed, nickname: "s\u009b2J" }],
    ["nickname with a bidi override (U+202E)", { ...fixed, nickname: "s\u202e1" }],
    ["nickname with a bidi isolate (U+2066)", { ...fixed, nickname: "s\u20661" }],
    ["nickname with a zero-width joiner (U+200D, Cf)", { ...fixed, nickname: "s\u200d1" }],
    ["nickname with a line separator (U+2028)", { ...fixed, nickname: "s\u20281" }],
    ["nickname with a paragraph separator (U+2029)", { ...fixed, nickname: "s\u20291" }],
    ["software with an escape (U+001B)", { ...fixed, software: "shoal/\u001b[2J" }],
    ["software with a bidi override (U+202D)", { ...fixed, software: "shoal/\u202d0.1" }],
    ["service type with a C1 control", {
      ...fixed,
      services: [...fixed.services, { type: "web\u0085" }],
    }],
    ["serverId of 31 bytes", { ...fixed, serverId: fill(31, 1) }],
    ["serverId as text", { ...fixed, serverId: "01".repeat(32) }],
    ["software not text", { ...fixed, software: 1 }],
    ["software of 201 characters", { ...fixed, software: "s".repeat(201) }],
    ["announced not an integer", { ...fixed, announced: 1.5 }],
    ["announced as text", { ...fixed, announced: "1700000000" }],
    ["services not a list", { ...fixed, services: {} }],
    ["65 services", { ...fixed, services: Array.from({ length: 65 }, () => ({ type: "x" })) }],
    ["service without a type", { ...fixed, services: [{ storageUrls: [gsaUrls[0]] }] }],
    ["service that is not a map", { ...fixed, services: ["storage"] }],
    ["storage service twice", { ...fixed, services: [fixed.services[0], fixed.services[0]] }],
    ["storage service with no URLs", {
      ...fixed,
      services: [{ type: "storage", storageUrls: [] }],
    }],
    ["storage service with 17 URLs", {
      ...fixed,
      services: [{ type: "storage", storageUrls: Array(17).fill(gsaUrls[0]) }],
    }],
    ["storage URL not text", {
      ...fixed,
      services: [{ type: "storage", storageUrls: [enc.encode(gsaUrls[0])] }],
    }],
    ["malformed storage URL", {
      ...fixed,
      services: [{ type: "storage", storageUrls: ["shoal-storage:v1:x"] }],
    }],
    ["storage URL pinned to another server", {
      ...fixed,
      services: [{ type: "storage", storageUrls: [gsaUrls[0], otherPin] }],
    }],
  ];
  const gsaInvalid = gsaBad.map(([name, d]) => {
    const clean = Array.isArray(d) ? d : Object.fromEntries(
      Object.entries(d as Record<string, unknown>).filter(([, v]) => v !== undefined),
    );
    const bytes = cbor(clean);
    try {
      decodeAnnouncement(bytes);
    } catch (e) {
      if ((e as Error).name !== "AnnouncementError") {
        fail(`GSA '${name}': threw ${(e as Error).name}`);
      }
      return { name, cbor: toHex(bytes), error: (e as Error).message };
    }
    return fail(`invalid GSA '${name}' was accepted`);
  });
  // GSD (docs/discovery.md §3)
  const gsaRead = (b: number) => capOf("mutable-read", b);
  const gsdEntries = [
    { name: "v1.s1", readcap: gsaRead(0x91), metadata: { ctime: 1700000000, mtime: 1700000000 } },
    { name: "v1.node-2.example_b", readcap: gsaRead(0x92), metadata: {} },
    { name: "v2.future", readcap: gsaRead(0x93), metadata: {} },
    { name: "v1.-bad", readcap: gsaRead(0x94), metadata: {} },
    { name: "v1.s5", readcap: capOf("dir-read", 0x95), metadata: {} },
    { name: "v1.s6", readcap: CHK_READ, metadata: {} },
    { name: "README", readcap: CHK_READ, metadata: {} },
    // Bound to the server id the operator verified (docs/discovery.md §3, "Binding").
    {
      name: "v1.s7",
      readcap: gsaRead(0x97),
      metadata: { ctime: 1700000000, mtime: 1700000000, serverId: base32Encode(fill(32, 0x07)) },
    },
    { name: "v1.s8", readcap: gsaRead(0x98), metadata: { serverId: "S7" } },
    { name: "v1.s9", readcap: gsaRead(0x99), metadata: { serverId: fill(32, 0x09) } },
  ];
  const gsdMetaFixed = { issued: 1700000000, expires: 1700604800 };
  const K = keys(fill(32, 0x61));
  const gsdBytes = refDirectory(gsdEntries, K.writekey, gsdMetaFixed);
  same(
    await encodeDirectory(gsdEntries, K.writekey, gsdMetaFixed, counterRandom()),
    gsdBytes,
    "GSD document",
  );
  const { links, problems } = gsdLinks((await decodeDirectoryDoc(gsdBytes, null)).entries);
  if (
    links.map((l) => `${l.petname}:${l.serverId}`).join() !==
      `node-2.example_b:null,s1:null,s7:${base32Encode(fill(32, 0x07))}` ||
    problems.length !== 5
  ) {
    fail("gsdLinks disagrees with the GSD document vector");
  }
  const many = [gsdRead, ...Array(1000).fill(u1)].join(",");
  if (parseIntroductionText(many).storageUrls.length !== 1000) fail("1000 storage URLs refused");
  try {
    parseIntroductionText(`${many},${u1}`);
    fail("1001 storage URLs accepted");
  } catch (e) {
    if (!(e as Error).message.includes("more than 1000 storage URLs")) throw e;
  }
  const day = 86400;
  return {
    description: "Discovery vectors (docs/discovery.md). `introduction.valid`: texts and what " +
      "parseIntroductionText returns (keys in hex); `introduction.invalid`: texts it MUST refuse " +
      "with an IntroductionTextError whose message contains `error` (`repeatUrl`: the text is " +
      "`gsdReadcap` followed by that many copies of `,` + `url`). `gsa.valid`: announcement CBOR and " +
      "its decoded fields; `gsa.invalid`: CBOR decodeAnnouncement MUST refuse (AnnouncementError; " +
      "`error` is this implementation's message). `gsd`: petnames, a GSD document (directory " +
      "CBOR, writekey from `seed`, counter random source as in directories.json) with the links " +
      "and problems gsdLinks reports (a link's `serverId` is the server id its entry is bound to, " +
      "from the entry metadata `serverId`, or null; a malformed one makes the entry a problem), " +
      "and freshness cases (times in seconds).",
    introduction: {
      valid: introValid,
      invalid: [
        ...introInvalid,
        {
          name: "1001 storage URLs",
          gsdReadcap: gsdRead,
          url: u1,
          repeatUrl: 1001,
          error: "more than 1000 storage URLs",
        },
      ],
      maxUrls: { gsdReadcap: gsdRead, url: u1, repeatUrl: 1000 },
    },
    gsa: {
      valid: gsaValid,
      invalid: gsaInvalid,
      maxBytes: 65536,
    },
    gsd: {
      petnames: {
        valid: ["s1", "a", "0", "node-2.example_b", "A".repeat(64), "x.", "x-"],
        invalid: [
          "",
          "-s",
          ".s",
          "_s",
          "A".repeat(65),
          "s 1",
          "s/1",
          "caf\u00e9",
          "s\n",
          "s,1",
          "s:1",
        ],
      },
      document: {
        seed: toHex(K.seed),
        meta: gsdMetaFixed,
        cbor: toHex(gsdBytes),
        links: [
          { petname: "node-2.example_b", gsaReadcap: gsaRead(0x92), serverId: null },
          { petname: "s1", gsaReadcap: gsaRead(0x91), serverId: null },
          { petname: "s7", gsaReadcap: gsaRead(0x97), serverId: base32Encode(fill(32, 0x07)) },
        ],
        problems: ["v1.-bad", "v1.s5", "v1.s6", "v1.s8", "v1.s9"],
      },
      meta: {
        valid: [gsdMetaFixed, { issued: 5, expires: 5 }],
        invalid: [
          { issued: 10, expires: 9 },
          { issued: 1.5, expires: 10 },
          { issued: "1", expires: 10 },
          { expires: 10 },
          { issued: 1 },
          {},
        ],
      },
      freshness: [
        { issued: 1000, expires: 1000 + 7 * day, now: 1000, grace: 7 * day, expect: "fresh" },
        {
          issued: 1000,
          expires: 1000 + 7 * day,
          now: 1000 + 7 * day,
          grace: 7 * day,
          expect: "fresh",
        },
        {
          issued: 1000,
          expires: 1000 + 7 * day,
          now: 1001 + 7 * day,
          grace: 7 * day,
          expect: "expired",
        },
        {
          issued: 1000,
          expires: 1000 + 7 * day,
          now: 1000 + 14 * day,
          grace: 7 * day,
          expect: "expired",
        },
        {
          issued: 1000,
          expires: 1000 + 7 * day,
          now: 1001 + 14 * day,
          grace: 7 * day,
          expect: "expired-past-grace",
        },
        { issued: 1000, expires: 2000, now: 2001, grace: 0, expect: "expired-past-grace" },
        { issued: 1000, expires: 2000, now: 500, grace: 0, expect: "fresh" },
      ],
    },
  };
}

const dir = new URL("../tests/vectors/", import.meta.url);
const out = {
  "mutable.json": await genMutable(),
  "directories.json": await genDirectories(),
  "discovery.json": await genDiscovery(),
};
for (const [name, value] of Object.entries(out)) {
  await Deno.writeTextFile(new URL(name, dir), JSON.stringify(value, null, 1) + "\n");
  console.log(`wrote tests/vectors/${name}`);
}
// The GSD entry prefix the vectors assume.
if (GSD_ENTRY_PREFIX !== "v1.") fail("GSD entry prefix changed");

/**
 * Mutable share format (docs/mutable-files.md §1–§3) against tests/vectors/mutable.json.
 * The share check of §3 is reimplemented here from the doc (manual parse, node:crypto
 * SHA-256 and Ed25519), independently of lib/grid/mutable.ts.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey, verify as edVerify } from "node:crypto";
import fc from "fast-check";
import { decodeSegment, fromHex, toHex } from "../../lib/codec/mod.ts";
import { aesCtr, mutableDataKey, mutableKeysFromSeed } from "../../lib/crypto/mod.ts";
import {
  encodeVersion,
  MutableShareError,
  neededHashCount,
  packPrefix,
  packShare,
  shareSize,
  unpackPrefix,
  unpackShare,
  unpackShareHeader,
} from "../../lib/grid/mod.ts";

interface ValidVector {
  name: string;
  seed: string;
  contents: string;
  seqnum: number;
  salt: string;
  k: number;
  n: number;
  publicKey: string;
  readkey: string;
  storageIndex: string;
  fingerprint: string;
  blockLength: number;
  root: string;
  prefix: string;
  checkstring: string;
  signature: string;
  shares: string[];
}
const V: {
  valid: ValidVector[];
  invalid: { name: string; share: string; error: string }[];
} = JSON.parse(Deno.readTextFileSync(new URL("../vectors/mutable.json", import.meta.url)));

const enc = new TextEncoder();

// ---- docs/mutable-files.md §3, written from the doc ----
function th(tag: string, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of [enc.encode(tag), ...parts]) {
    h.update(enc.encode(`${p.length}:`)).update(p).update(",");
  }
  return new Uint8Array(h.digest());
}
const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

/** Why a reader holding `fingerprint` must refuse `share` (stored as `storedAs`), or null to accept. */
function refuseReason(share: Uint8Array, fingerprint: Uint8Array, storedAs: number): string | null {
  // 1. it parses (§2)
  if (share.length < 172 || share[0] !== 1) return "parse: header";
  const dv = new DataView(share.buffer, share.byteOffset, share.byteLength);
  const k = dv.getUint16(57);
  const n = dv.getUint32(59);
  const length = dv.getBigUint64(63);
  if (!(k >= 1 && k <= n && k <= 256 && (n <= 256 || k === 1) && n <= 2 ** 24)) {
    return "parse: encoding";
  }
  if (length > BigInt(Number.MAX_SAFE_INTEGER)) return "parse: length";
  if (dv.getBigUint64(1) > BigInt(Number.MAX_SAFE_INTEGER)) return "parse: sequence number";
  const shareNumber = dv.getUint32(167);
  if (shareNumber >= n) return "parse: share number";
  let d = 0;
  while (2 ** d < n) d++;
  if (share[171] !== d) return "parse: m";
  const blockAt = 172 + 32 * d;
  const want = k === 1 ? Number(length) : Math.ceil(Number(length) / k);
  if (share.length - blockAt !== want) return "parse: block length";
  if (shareNumber !== storedAs) return "stored under another number";
  const prefix = share.subarray(0, 71);
  const publicKey = share.subarray(71, 103);
  const signature = share.subarray(103, 167);
  // 2. fingerprint
  if (!eq(th("shoal:v1:fingerprint", publicKey), fingerprint)) return "fingerprint";
  // 3. signature over the tagged hash of the prefix
  const spki = new Uint8Array([...fromHex("302a300506032b6570032100"), ...publicKey]);
  let sigOk = false;
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    sigOk = edVerify(null, th("shoal:v1:mutable-signature", prefix), key, signature);
  } catch {
    sigOk = false;
  }
  if (!sigOk) return "signature";
  // 4. hash-tree path from the leaf to the signed root (docs/crypto.md §8)
  const block = share.subarray(blockAt);
  let h = th("shoal:v1:mutable-share-leaf", u32(shareNumber), th("shoal:v1:mutable-block", block));
  for (let l = 0; l < d; l++) {
    const sibling = share.subarray(172 + 32 * l, 172 + 32 * (l + 1));
    h = (shareNumber >> l) & 1
      ? th("shoal:v1:hash-tree-node", sibling, h)
      : th("shoal:v1:hash-tree-node", h, sibling);
  }
  if (!eq(h, share.subarray(9, 41))) return "hash tree";
  return null;
}

Deno.test("vectors: key derivation and encodeVersion reproduce prefix, signature, root and every share", async () => {
  for (const v of V.valid) {
    const keys = await mutableKeysFromSeed(fromHex(v.seed));
    assert.equal(toHex(keys.publicKey), v.publicKey, v.name);
    assert.equal(toHex(keys.readkey), v.readkey, v.name);
    assert.equal(toHex(keys.storageIndex), v.storageIndex, v.name);
    assert.equal(toHex(keys.fingerprint), v.fingerprint, v.name);
    const e = await encodeVersion(
      keys,
      enc.encode(v.contents),
      v.seqnum,
      fromHex(v.salt),
      v.k,
      v.n,
    );
    assert.equal(toHex(e.prefix), v.prefix, v.name);
    assert.equal(toHex(e.signature), v.signature, v.name);
    assert.equal(toHex(e.tree.root), v.root, v.name);
    assert.equal(v.shares.length, v.n);
    for (let i = 0; i < v.n; i++) {
      assert.equal(toHex(e.share(i)), v.shares[i], `${v.name}: share ${i}`);
      assert.equal(v.shares[i].slice(0, 57 * 2), v.checkstring, `${v.name}: checkstring ${i}`);
    }
    assert.equal(v.prefix.slice(0, 57 * 2), v.checkstring);
    // Another salt gives another version (the salt is what makes encodeVersion deterministic).
    const other = await encodeVersion(
      keys,
      enc.encode(v.contents),
      v.seqnum,
      new Uint8Array(16),
      v.k,
      v.n,
    );
    assert.notEqual(toHex(other.prefix), v.prefix);
  }
});

Deno.test("vectors: unpackShare returns every field of every share", () => {
  for (const v of V.valid) {
    const m = neededHashCount(v.n);
    assert.equal(m, Math.ceil(Math.log2(v.n)));
    for (let i = 0; i < v.n; i++) {
      const bytes = fromHex(v.shares[i]);
      const s = unpackShare(bytes);
      assert.deepEqual(s.prefix, {
        seqnum: v.seqnum,
        rootHash: fromHex(v.root),
        salt: fromHex(v.salt),
        k: v.k,
        n: v.n,
        dataLength: enc.encode(v.contents).length,
      });
      assert.equal(toHex(s.prefixBytes), v.prefix);
      assert.equal(toHex(s.publicKey), v.publicKey);
      assert.equal(toHex(s.signature), v.signature);
      assert.equal(s.shareNumber, i);
      assert.equal(s.neededHashes.length, m);
      assert.equal(s.blockOffset, 172 + 32 * m);
      assert.equal(s.block.length, v.blockLength);
      assert.equal(shareSize(s.prefix), bytes.length);
      // The header parses from the header bytes alone; the prefix packs back identically.
      const h = unpackShareHeader(bytes.slice(0, s.blockOffset));
      assert.equal(h.shareNumber, i);
      assert.equal(toHex(packPrefix(unpackPrefix(bytes))), v.prefix);
      assert.equal(
        toHex(packShare(s.prefixBytes, s.publicKey, s.signature, i, s.neededHashes, s.block)),
        v.shares[i],
      );
    }
  }
});

Deno.test("vectors: every share passes the §3 check; the contents come back from k shares", async () => {
  for (const v of V.valid) {
    const fp = fromHex(v.fingerprint);
    v.shares.forEach((s, i) =>
      assert.equal(refuseReason(fromHex(s), fp, i), null, `${v.name}: ${i}`)
    );
    const blocks = v.shares.map((s) => unpackShare(fromHex(s)).block);
    const length = enc.encode(v.contents).length;
    const ciphertext = v.k === 1 ? blocks[v.n - 1] : decodeSegment(
      blocks.slice(-v.k).map((data, j) => ({ index: v.n - v.k + j, data })),
      v.k,
      v.n,
      length,
    );
    const plain = await aesCtr(
      mutableDataKey(fromHex(v.readkey), fromHex(v.salt)),
      new Uint8Array(16),
      ciphertext,
    );
    assert.equal(new TextDecoder().decode(plain), v.contents);
  }
});

Deno.test("the §3 check refuses another object's share, a forged signature, a bad block or path", () => {
  const v = V.valid.find((x) => x.k === 3)!;
  const other = V.valid.find((x) => x.fingerprint !== v.fingerprint)!;
  const share = fromHex(v.shares[4]);
  const fp = fromHex(v.fingerprint);
  const flip = (at: number) => {
    const x = new Uint8Array(share);
    x[at] ^= 1;
    return x;
  };
  assert.equal(refuseReason(share, fromHex(other.fingerprint), 4), "fingerprint");
  assert.equal(refuseReason(share, fp, 5), "stored under another number");
  assert.equal(refuseReason(flip(8), fp, 4), "signature"); // seqnum
  assert.equal(refuseReason(flip(20), fp, 4), "signature"); // root
  assert.equal(refuseReason(flip(45), fp, 4), "signature"); // salt
  assert.equal(refuseReason(flip(80), fp, 4), "fingerprint"); // public key
  assert.equal(refuseReason(flip(120), fp, 4), "signature");
  assert.equal(refuseReason(flip(180), fp, 4), "hash tree"); // needed hash
  assert.equal(refuseReason(flip(share.length - 1), fp, 4), "hash tree"); // block
  // A share of the same version renumbered: parses, signature holds, the path does not.
  const s = unpackShare(fromHex(v.shares[5]));
  const renumbered = packShare(s.prefixBytes, s.publicKey, s.signature, 4, s.neededHashes, s.block);
  assert.equal(refuseReason(renumbered, fp, 4), "hash tree");
  // Another object's share carrying our public key and signature does not verify either.
  const o = unpackShare(fromHex(other.shares[0]));
  const spliced = packShare(
    o.prefixBytes,
    s.publicKey,
    s.signature,
    o.shareNumber,
    o.neededHashes,
    o.block,
  );
  assert.equal(refuseReason(spliced, fp, 0), "signature");
});

Deno.test("vectors: malformed shares raise MutableShareError saying what is wrong", () => {
  assert(V.invalid.length >= 15);
  for (const c of V.invalid) {
    assert.throws(
      () => unpackShare(fromHex(c.share)),
      (e: unknown) => e instanceof MutableShareError && e.message === c.error,
      c.name,
    );
  }
  // Header-only parsing refuses what is refused before the block.
  const v = V.valid.find((x) => x.k === 3)!;
  const header = fromHex(v.shares[0]).slice(0, 172 + 32 * 4);
  unpackShareHeader(header);
  assert.throws(() => unpackShareHeader(header.slice(0, -1)), MutableShareError);
  assert.throws(() => unpackShareHeader(header.slice(0, 100)), MutableShareError);
});

Deno.test({
  name: "a sequence number above 2^53-1 raises MutableShareError",
  fn() {
    const x = fromHex(V.valid[0].shares[0]);
    x.fill(0xff, 1, 9);
    assert.throws(() => unpackShare(x), MutableShareError);
  },
});

/** Valid vector shares, and mutations of them: bytes overwritten, truncated or extended. */
const shareBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.record({
    base: fc.constantFrom(...V.valid.flatMap((v) => v.shares)),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    }),
    cut: fc.option(fc.nat()),
    extra: fc.uint8Array({ maxLength: 40 }),
  }).map(({ base, edits, cut, extra }) => {
    const b = fromHex(base);
    for (const [at, x] of edits) b[at % b.length] ^= x;
    const c = cut === null ? b : b.slice(0, cut % (b.length + 1));
    return cut === null && extra.length ? new Uint8Array([...c, ...extra]) : c;
  }),
);

Deno.test("fuzz: unpackShare refuses garbage only with MutableShareError and never returns a wrong share", () => {
  fc.assert(
    fc.property(shareBytes, (b) => {
      let s;
      try {
        s = unpackShare(b);
      } catch (e) {
        if (e instanceof MutableShareError) return;
        throw e;
      }
      const { k, n, dataLength } = s.prefix;
      assert.equal(b[0], 1);
      assert(k >= 1 && k <= n && k <= 256 && (n <= 256 || k === 1));
      assert(s.shareNumber < n);
      assert.equal(s.neededHashes.length, neededHashCount(n));
      assert.equal(s.block.length, k === 1 ? dataLength : Math.ceil(dataLength / k));
      assert.equal(b.length, shareSize(s.prefix));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("fuzz: any change to a valid share is refused by parsing or by the §3 check", () => {
  const cases = V.valid.flatMap((v) => v.shares.map((s, i) => ({ v, s, i })));
  fc.assert(
    fc.property(
      fc.constantFrom(...cases),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
        minLength: 1,
        maxLength: 3,
      }),
      ({ v, s, i }, edits) => {
        const b = fromHex(s);
        for (const [at, x] of edits) b[at % b.length] ^= x;
        if (toHex(b) === s) return; // edits cancelled out
        let parsed = true;
        try {
          unpackShare(b);
        } catch (e) {
          if (!(e instanceof MutableShareError)) {
            throw e;
          }
          parsed = false;
        }
        const reason = refuseReason(b, fromHex(v.fingerprint), i);
        assert.notEqual(reason, null, "a modified share passed the §3 check");
        if (!parsed) {
          assert(reason!.startsWith("parse"), `library refused, reference said ${reason}`);
        }
        if (reason!.startsWith("parse")) {
          assert(!parsed, `reference refused: ${reason}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

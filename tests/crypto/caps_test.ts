import assert from "node:assert/strict";
import fc from "fast-check";
import { base32Encode, concatBytes, toHex } from "../../lib/codec/mod.ts";
import {
  type Cap,
  CapError,
  capKindName,
  capStorageIndex,
  diminishCap,
  fingerprintFromPublicKey,
  formatCap,
  immutableStorageIndex,
  isDirCap,
  isMutableCap,
  isWriteCap,
  parseCap,
  publicKeyFromSeed,
  readcapOf,
  readkeyFromWritekey,
  storageIndexFromFingerprint,
  verifycapOf,
  writekeyFromSeed,
} from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/caps.json", import.meta.url)));

const KINDS = [
  "mutable-write",
  "mutable-read",
  "mutable-verify",
  "dir-write",
  "dir-read",
  "dir-verify",
  "immutable-read",
  "immutable-verify",
] as const;

Deno.test("every vector cap parses to the vector's fields and formats back identically", () => {
  for (const v of V.valid) {
    for (const kind of KINDS) {
      const text = v.caps[kind];
      const cap = parseCap(text) as Record<string, unknown>;
      assert.equal(cap.kind, kind);
      assert.equal(formatCap(cap as Cap), text);
      const expect: Record<string, string> = {
        seed: v.seed,
        readkey: v.readkey,
        fingerprint: v.fingerprint,
        storageIndex: kind === "immutable-verify" ? v.immutableStorageIndex : v.storageIndex,
        key: v.immutableKey,
        uebHash: v.uebHash,
      };
      for (const [name, value] of Object.entries(cap)) {
        if (name === "kind") continue;
        if (value instanceof Uint8Array) {
          assert.equal(toHex(value), expect[name], `${kind}.${name}`);
        } else assert.equal(value, v[name], `${kind}.${name}`);
      }
      assert.equal(capKindName(cap as Cap), text.split(":")[1]);
    }
  }
});

Deno.test("diminishing every vector writecap follows the vectors and the derivation chain", async () => {
  for (const v of V.valid) {
    for (const family of ["mutable", "dir", "immutable"]) {
      const top = parseCap(v.caps[`${family}-${family === "immutable" ? "read" : "write"}`]);
      let cap = top;
      const chain = family === "immutable" ? ["read", "verify"] : ["write", "read", "verify"];
      for (let i = 0; i < chain.length; i++) {
        assert.equal(formatCap(cap), v.caps[`${family}-${chain[i]}`]);
        assert.equal(
          toHex(await capStorageIndex(cap)),
          family === "immutable" ? v.immutableStorageIndex : v.storageIndex,
        );
        if (i + 1 < chain.length) cap = await diminishCap(cap);
      }
      await assert.rejects(
        diminishCap(cap),
        (e) => e instanceof CapError && e.code === "cannot-diminish",
      );
      assert.equal(formatCap(await verifycapOf(top)), v.caps[`${family}-verify`]);
      assert.equal(formatCap(await readcapOf(top)), v.caps[`${family}-read`]);
      await assert.rejects(readcapOf(cap), CapError);
      assert.equal(await verifycapOf(cap), cap);
    }
  }
});

Deno.test("every invalid vector gives a CapError with the documented code", () => {
  assert.ok(V.invalid.length >= 30);
  for (const v of V.invalid) {
    assert.throws(
      () => parseCap(v.text),
      (e) => e instanceof CapError && e.code === v.code,
      `expected ${v.code} for ${JSON.stringify(v.text.slice(0, 40))}`,
    );
  }
});

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const capArb: fc.Arbitrary<Cap> = fc.oneof(
  bytes(32).map((seed) => ({ kind: "mutable-write", seed }) as Cap),
  bytes(32).map((seed) => ({ kind: "dir-write", seed }) as Cap),
  fc.tuple(bytes(32), bytes(32), fc.boolean()).map(([readkey, fingerprint, d]) =>
    ({ kind: d ? "dir-read" : "mutable-read", readkey, fingerprint }) as Cap
  ),
  fc.tuple(bytes(16), bytes(32), fc.boolean()).map(([storageIndex, fingerprint, d]) =>
    ({ kind: d ? "dir-verify" : "mutable-verify", storageIndex, fingerprint }) as Cap
  ),
  fc.tuple(
    bytes(32),
    bytes(32),
    fc.integer({ min: 1, max: 256 }),
    fc.integer({ min: 0, max: 255 }),
    fc.maxSafeNat(),
    fc.boolean(),
  ).map(([a, uebHash, k, extra, size, v]) => {
    const n = Math.min(256, k + extra);
    return (v
      ? { kind: "immutable-verify", storageIndex: a.slice(0, 16), uebHash, k, n, size }
      : { kind: "immutable-read", key: a, uebHash, k, n, size }) as Cap;
  }),
);

Deno.test("property: parse(format(cap)) == cap and format(parse(s)) == s", () => {
  fc.assert(
    fc.property(capArb, (cap) => {
      const s = formatCap(cap);
      assert.match(s, /^shoal:[A-Z]{3}-[WRV]1:[a-z2-7]+(:\d+:\d+:\d+)?$/);
      const back = parseCap(s);
      assert.deepEqual(back, cap);
      assert.equal(formatCap(back), s);
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: diminish is consistent with the derivation chain", async () => {
  await fc.assert(
    fc.asyncProperty(bytes(32), fc.boolean(), async (seed, dir) => {
      const w: Cap = { kind: dir ? "dir-write" : "mutable-write", seed };
      const r = await readcapOf(w);
      const readkey = readkeyFromWritekey(writekeyFromSeed(seed));
      const fingerprint = fingerprintFromPublicKey(await publicKeyFromSeed(seed));
      assert.deepEqual(r, { kind: dir ? "dir-read" : "mutable-read", readkey, fingerprint });
      const vc = await verifycapOf(w);
      assert.deepEqual(vc, {
        kind: dir ? "dir-verify" : "mutable-verify",
        storageIndex: storageIndexFromFingerprint(fingerprint),
        fingerprint,
      });
      assert.deepEqual(await diminishCap(r), vc);
      assert.equal(isMutableCap(w) && isWriteCap(w) && isDirCap(w) === dir, true);
      assert.deepEqual(await capStorageIndex(w), await capStorageIndex(vc));
    }),
    { numRuns: 50 },
  );
  await fc.assert(
    fc.asyncProperty(capArb, async (cap) => {
      if (cap.kind !== "immutable-read") return;
      const vc = await diminishCap(cap);
      assert.deepEqual(vc, {
        kind: "immutable-verify",
        storageIndex: immutableStorageIndex(cap.key),
        uebHash: cap.uebHash,
        k: cap.k,
        n: cap.n,
        size: cap.size,
      });
    }),
  );
});

function parseOutcome(text: string): "ok" | "caperror" {
  try {
    const cap = parseCap(text);
    assert.equal(formatCap(cap), text, "a string that parses must be canonical");
    return "ok";
  } catch (e) {
    if (e instanceof CapError) return "caperror";
    throw e;
  }
}

Deno.test("garbage and mutated caps give CapError or a canonical cap, never anything else", () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void parseOutcome(s)), {
    numRuns: 2000,
  });
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 140 }),
      (s) => void parseOutcome("shoal:" + s),
    ),
  );
  const samples: string[] = V.valid.flatMap((v: { caps: Record<string, string> }) =>
    Object.values(v.caps)
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...samples),
      fc.array(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 127 }), fc.integer({ min: 0, max: 2 })),
      ),
      (s, edits) => {
        let t = s;
        for (const [pos, ch, op] of edits) {
          const p = pos % (t.length + 1);
          const c = String.fromCharCode(ch);
          t = op === 0
            ? t.slice(0, p) + c + t.slice(p + 1)
            : op === 1
            ? t.slice(0, p) + c + t.slice(p)
            : t.slice(0, p) + t.slice(p + 1);
        }
        parseOutcome(t);
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("CapError messages never contain the cap text or its payload", () => {
  const secretish = V.valid[2].caps["mutable-write"] as string;
  const payload = secretish.split(":")[2];
  const mutations = [
    secretish.slice(0, -1),
    secretish + "a",
    secretish + ":1",
    secretish.replace("shoal:", "shoal:x"),
    secretish.replace("shoal:MUT-W1:", "shoal:"),
    secretish.replace("shoal:MUT-W1:", "shoal:" + payload.slice(0, 8).toUpperCase() + ":"),
    secretish.replace("MUT-W1", "MUT-W9"),
    secretish.slice(0, 30) + "1" + secretish.slice(31),
    secretish.slice(0, 30) + " " + secretish.slice(31),
    secretish.slice(0, -1) + "7",
    "xshoal:MUT-W1:" + payload,
    " " + secretish,
  ];
  for (const m of mutations) {
    try {
      parseCap(m);
      assert.fail("should not parse");
    } catch (e) {
      assert.ok(e instanceof CapError, String(e));
      for (let i = 0; i + 8 <= payload.length; i++) {
        const piece = payload.slice(i, i + 8);
        assert.ok(!e.message.includes(piece), `message leaks payload: ${e.code}`);
        assert.ok(!e.message.toLowerCase().includes(piece), `message leaks payload: ${e.code}`);
      }
    }
  }
});

Deno.test("error messages say what is wrong and where", () => {
  const w = V.valid[1].caps["mutable-write"] as string;
  const msg = (s: string) => {
    try {
      parseCap(s);
    } catch (e) {
      return (e as Error).message;
    }
    return "parsed";
  };
  assert.match(msg(w.slice(0, 30) + "1" + w.slice(31)), /position 30/);
  assert.match(msg(w.slice(0, -1)), /expected 52 base32 characters \(32 bytes\), got 51/);
  assert.match(msg("shoal:MUT-W3:" + w.slice(13)), /unsupported version 3 of cap kind MUT-W/);
  assert.match(msg("URI:CHK:abc"), /Tahoe-LAFS/);
  assert.match(msg(w + "\n"), /whitespace at position 65/);
});

Deno.test("formatCap refuses malformed cap objects", () => {
  const bad = [
    { kind: "mutable-write", seed: new Uint8Array(31) },
    { kind: "mutable-read", readkey: new Uint8Array(32) },
    { kind: "nope" },
    {
      kind: "immutable-read",
      key: new Uint8Array(32),
      uebHash: new Uint8Array(32),
      k: 0,
      n: 1,
      size: 1,
    },
    {
      kind: "immutable-read",
      key: new Uint8Array(32),
      uebHash: new Uint8Array(32),
      k: 3,
      n: 2,
      size: 1,
    },
    {
      kind: "immutable-verify",
      storageIndex: new Uint8Array(16),
      uebHash: new Uint8Array(32),
      k: 1,
      n: 1,
      size: 2 ** 53,
    },
  ];
  for (const b of bad) assert.throws(() => formatCap(b as unknown as Cap), CapError);
  const ok = {
    kind: "mutable-verify",
    storageIndex: new Uint8Array(16),
    fingerprint: new Uint8Array(32),
  } as Cap;
  assert.equal(formatCap(ok), "shoal:MUT-V1:" + base32Encode(concatBytes(new Uint8Array(48))));
  const longest = formatCap({
    kind: "immutable-read",
    key: new Uint8Array(32),
    uebHash: new Uint8Array(32),
    k: 256,
    n: 256,
    size: 2 ** 53 - 1,
  });
  assert.equal(longest.length, 141);
  assert.equal(formatCap(parseCap(longest)), longest);
});

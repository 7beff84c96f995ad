import assert from "node:assert/strict";
import fc from "fast-check";
import { CborError, decodeCbor, encodeCbor, fromHex, toHex } from "../../lib/codec/mod.ts";

Deno.test("CBOR round-trips the value shapes Shoal uses", () => {
  const value = {
    a: 1,
    b: -5,
    big: 2 ** 53 - 1,
    s: "héllo",
    bytes: new Uint8Array([1, 2, 3]),
    list: [true, false, null, "x", new Uint8Array(0)],
    nested: { x: [1, [2, [3]]] },
    f: 1.5,
  };
  const back = decodeCbor(encodeCbor(value));
  assert.deepEqual(back, value);
  assert.ok((back as { bytes: unknown }).bytes instanceof Uint8Array);
});

Deno.test("CBOR encodes RFC 8949 Appendix A examples", () => {
  const cases: [unknown, string][] = [
    [0, "00"],
    [23, "17"],
    [24, "1818"],
    [1000000, "1a000f4240"],
    [-1, "20"],
    ["IETF", "6449455446"],
    [[1, [2, 3], [4, 5]], "8301820203820405"],
    [{ a: 1, b: [2, 3] }, "a26161016162820203"],
    [new Uint8Array([1, 2, 3, 4]), "4401020304"],
    [true, "f5"],
    [null, "f6"],
  ];
  for (const [v, hex] of cases) {
    assert.equal(toHex(encodeCbor(v)), hex);
    assert.deepEqual(decodeCbor(fromHex(hex)), v);
  }
});

Deno.test("property: arbitrary JSON-like values with byte strings round-trip", () => {
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { depthSize: "small" },
      fc.integer(),
      fc.string(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 20 }),
      fc.array(tie("tree"), { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 6 }), tie("tree"), {
        maxKeys: 4,
        noNullPrototype: true,
      }),
    ),
  }));
  fc.assert(fc.property(tree, (v) => assert.deepEqual(decodeCbor(encodeCbor(v)), v)), {
    numRuns: 500,
  });
});

Deno.test("the strict profile refuses what it documents", () => {
  const bad = [
    "", // empty
    "f7", // undefined
    "9f01ff", // indefinite array
    "5f4101ff", // indefinite byte string
    "a2616101616102", // duplicate map key
    "0001", // trailing bytes
    "18", // truncated
    "1a000f42", // truncated
    "f97e00", // NaN
    "f97c00", // Infinity
    "1c", // reserved additional info
  ];
  for (const hex of bad) assert.throws(() => decodeCbor(fromHex(hex)), CborError, hex);
  assert.throws(() => decodeCbor(new Uint8Array(10), 5), /exceeds/);
});

Deno.test('a map key "__proto__" stays an own property (no prototype pollution)', () => {
  const enc = new TextEncoder();
  const bytes = fromHex(
    "a169" + toHex(enc.encode("__proto__")) + "a168" + toHex(enc.encode("polluted")) + "f5",
  );
  const v = decodeCbor(bytes) as Record<string, unknown>;
  assert.deepEqual(Object.keys(v), ["__proto__"]);
  assert.equal((v as { polluted?: unknown }).polluted, undefined);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
});

Deno.test({
  name: "the strict profile refuses invalid UTF-8 in text strings",
  fn() {
    assert.throws(() => decodeCbor(fromHex("62c328")), CborError);
  },
});

Deno.test("garbage and mutated CBOR give CborError or a value, never another error", () => {
  const check = (b: Uint8Array) => {
    try {
      decodeCbor(b);
    } catch (e) {
      assert.ok(e instanceof CborError, `${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), check), { numRuns: 5000 });
  const sample = encodeCbor({ a: [1, 2, { b: new Uint8Array(8), c: "text" }], d: 1.25, e: -1000 });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (flips, cut) => {
        const m = new Uint8Array(sample);
        for (const [pos, val] of flips) m[pos % m.length] = val;
        check(m);
        check(m.subarray(0, cut % (m.length + 1)));
      },
    ),
    { numRuns: 5000 },
  );
});

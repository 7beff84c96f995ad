import assert from "node:assert/strict";
import fc from "fast-check";
import { base32 } from "@scure/base";
import {
  base32Decode,
  base32Encode,
  Base32Error,
  base32Length,
  fromHex,
  toHex,
} from "../../lib/codec/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

Deno.test("base32 reproduces RFC 4648 §10 (lowercase, unpadded)", () => {
  assert.equal(V.base32.vectors.length, 7);
  for (const v of V.base32.vectors) {
    assert.equal(base32Encode(fromHex(v.input)), v.text);
    assert.equal(toHex(base32Decode(v.text)), v.input);
    assert.equal(base32Length(fromHex(v.input).length), v.text.length);
  }
});

Deno.test("base32 agrees with @scure/base and round-trips every byte string", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const s = base32Encode(b);
      assert.equal(s, base32.encode(b).toLowerCase().replace(/=+$/, ""));
      assert.equal(s.length, base32Length(b.length));
      assert.match(s, /^[a-z2-7]*$/);
      assert.equal(toHex(base32Decode(s)), toHex(b));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("base32Decode is strict: uppercase, padding, bad length, non-zero trailing bits", () => {
  const bad = ["MY", "my======", "m", "mzx", "mzxw6y", "mz", "m1", "m8", "my ", "m\u00e9"];
  for (const s of bad) assert.throws(() => base32Decode(s), Base32Error, JSON.stringify(s));
  assert.throws(() => base32Decode("mz"), /non-zero trailing bits/);
  assert.throws(() => base32Decode("abc1efgh"), /position 3/);
});

Deno.test("garbage into base32Decode: Base32Error or a canonical decoding, nothing else", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        const b = base32Decode(s);
        assert.equal(base32Encode(b), s, "only canonical text may decode");
      } catch (e) {
        assert.ok(e instanceof Base32Error, String(e));
      }
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z2-7]{0,40}$/), (s) => {
      try {
        assert.equal(base32Encode(base32Decode(s)), s);
      } catch (e) {
        assert.ok(e instanceof Base32Error, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

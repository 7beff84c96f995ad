import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex, utf8 } from "../../lib/codec/mod.ts";
import { publicKeyFromSeed, randomBytes, sign, verify } from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

Deno.test("Ed25519 reproduces RFC 8032 §7.1 tests 1-3", async () => {
  for (const v of V.ed25519.vectors) {
    const seed = fromHex(v.seed);
    assert.equal(toHex(await publicKeyFromSeed(seed)), v.publicKey);
    assert.equal(toHex(await sign(seed, fromHex(v.message))), v.signature);
    assert.equal(
      await verify(fromHex(v.publicKey), fromHex(v.message), fromHex(v.signature)),
      true,
    );
  }
});

Deno.test("verify rejects any flipped bit of message, signature or key", async () => {
  const seed = randomBytes(32);
  const pub = await publicKeyFromSeed(seed);
  const msg = utf8("shoal signed message");
  const sig = await sign(seed, msg);
  assert.equal(await verify(pub, msg, sig), true);
  await fc.assert(
    fc.asyncProperty(fc.nat(8 * (msg.length + 64 + 32) - 1), async (bit) => {
      const m = new Uint8Array(msg), s = new Uint8Array(sig), p = new Uint8Array(pub);
      const byte = bit >> 3, mask = 1 << (bit & 7);
      if (byte < m.length) m[byte] ^= mask;
      else if (byte < m.length + 64) s[byte - m.length] ^= mask;
      else p[byte - m.length - 64] ^= mask;
      assert.equal(await verify(p, m, s), false);
    }),
    { numRuns: 200 },
  );
});

Deno.test("verify returns false, never throws, for malformed keys and signatures", async () => {
  const msg = utf8("x");
  const sig = await sign(new Uint8Array(32), msg);
  const pub = await publicKeyFromSeed(new Uint8Array(32));
  const bad: [unknown, unknown, unknown][] = [
    [new Uint8Array(31), msg, sig],
    [new Uint8Array(33), msg, sig],
    [pub, msg, sig.subarray(0, 63)],
    [pub, msg, new Uint8Array(65)],
    [new Uint8Array(32).fill(0xff), msg, sig], // not a curve point
    [pub, msg, new Uint8Array(64).fill(0xff)], // S out of range
    [null, msg, sig],
    [pub, "x", sig],
    [pub, msg, undefined],
  ];
  for (const [p, m, s] of bad) {
    assert.equal(await verify(p as Uint8Array, m as Uint8Array, s as Uint8Array), false);
  }
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      async (p, s) => assert.equal(await verify(p, msg, s), false),
    ),
    { numRuns: 100 },
  );
});

Deno.test("sign/publicKeyFromSeed stay correct past the key cache bound", async () => {
  const seeds = Array.from({ length: 300 }, () => randomBytes(32));
  const msg = utf8("cache");
  const pubs = [];
  for (const s of seeds) pubs.push(await publicKeyFromSeed(s));
  for (let i = 0; i < seeds.length; i += 37) {
    assert.equal(await verify(pubs[i], msg, await sign(seeds[i], msg)), true);
    assert.equal(toHex(await publicKeyFromSeed(seeds[i])), toHex(pubs[i]));
  }
  assert.equal(await verify(pubs[0], msg, await sign(seeds[1], msg)), false);
});

Deno.test("publicKeyFromSeed returns a copy callers may modify; bad seeds are refused", async () => {
  const seed = randomBytes(32);
  const p1 = await publicKeyFromSeed(seed);
  const keep = toHex(p1);
  p1.fill(0);
  assert.equal(toHex(await publicKeyFromSeed(seed)), keep);
  await assert.rejects(async () => await publicKeyFromSeed(new Uint8Array(31)), RangeError);
  await assert.rejects(async () => await sign(new Uint8Array(64), utf8("m")), RangeError);
});

/**
 * tests/vectors/ed25519.json (Wycheproof-style): small-order and
 * non-canonical public keys, S >= L, beside RFC 8032's valid cases. The
 * claimed orders of the small-order points are checked here with separate,
 * slow BigInt curve arithmetic, so the vectors do not rest on the library.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex } from "../../lib/codec/mod.ts";
import { isAcceptablePublicKey, publicKeyFromSeed, verify } from "../../lib/crypto/mod.ts";

interface Vectors {
  smallOrderPoints: { encoding: string; order: number }[];
  tests: {
    tcId: number;
    comment: string;
    publicKey: string;
    msg: string;
    sig: string;
    result: "valid" | "invalid";
    flags: string[];
  }[];
}
const V: Vectors = JSON.parse(
  Deno.readTextFileSync(new URL("../vectors/ed25519.json", import.meta.url)),
);

// ---- reference edwards25519 (affine, complete addition), BigInt ---------------
const P = (1n << 255n) - 19n;
const mod = (a: bigint) => ((a % P) + P) % P;
function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  b = mod(b);
  for (; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
}
const inv = (a: bigint) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);
type Pt = [bigint, bigint];
function add([x1, y1]: Pt, [x2, y2]: Pt): Pt {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inv(1n + t)), mod((y1 * y2 + x1 * x2) * inv(1n - t))];
}
/** Decode without canonicality checks (y reduced mod p); null when off the curve. */
function decode(hex: string): Pt | null {
  const b = fromHex(hex);
  const sign = b[31] >> 7;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? b[i] & 0x7f : b[i]);
  y = mod(y);
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  const x2 = mod(u * inv(v));
  let x = pow(x2, (P + 3n) / 8n);
  if (mod(x * x - x2) !== 0n) x = mod(x * SQRT_M1);
  if (mod(x * x - x2) !== 0n) return null;
  if (Number(x & 1n) !== sign) x = mod(-x);
  return [x, y];
}
function order(p: Pt): number {
  let q: Pt = p;
  for (let n = 1; n <= 8; n++) {
    if (q[0] === 0n && q[1] === 1n) return n;
    q = add(q, p);
  }
  return Infinity;
}

Deno.test("ed25519 vectors: the eight small-order points have the orders claimed", () => {
  assert.equal(V.smallOrderPoints.length, 8);
  const seen = new Set<string>();
  for (const p of V.smallOrderPoints) {
    const pt = decode(p.encoding);
    assert.ok(pt, p.encoding);
    assert.equal(order(pt), p.order, p.encoding);
    seen.add(`${pt[0]},${pt[1]}`);
  }
  assert.equal(seen.size, 8, "eight distinct points");
});

Deno.test("ed25519 vectors: verify gives the expected result for every case", async () => {
  for (const t of V.tests) {
    const got = await verify(fromHex(t.publicKey), fromHex(t.msg), fromHex(t.sig));
    assert.equal(got, t.result === "valid", `tcId ${t.tcId}: ${t.comment}`);
  }
});

Deno.test("ed25519: the identity key with S = 0 no longer verifies any message", async () => {
  const identity = fromHex("01" + "00".repeat(31));
  const forged = fromHex("01" + "00".repeat(63)); // R = identity, S = 0
  for (const m of ["", "transfer everything", "\u0000"]) {
    assert.equal(await verify(identity, new TextEncoder().encode(m), forged), false);
  }
  assert.equal(isAcceptablePublicKey(identity), false);
});

Deno.test("ed25519: isAcceptablePublicKey agrees with a reference on random and edge keys", async () => {
  const small = new Set(V.smallOrderPoints.map((p) => p.encoding));
  const reference = (hex: string): boolean => {
    const b = fromHex(hex);
    let y = 0n;
    for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? b[i] & 0x7f : b[i]);
    if (y >= P) return false;
    const pt = decode(hex);
    if (pt && pt[0] === 0n && b[31] >> 7) return false; // -0
    return !small.has(hex);
  };
  for (const t of V.tests) {
    assert.equal(isAcceptablePublicKey(fromHex(t.publicKey)), reference(t.publicKey), t.comment);
  }
  // Real keys are always acceptable.
  for (let i = 0; i < 20; i++) {
    assert.equal(
      isAcceptablePublicKey(await publicKeyFromSeed(crypto.getRandomValues(new Uint8Array(32)))),
      true,
    );
  }
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
      const hex = [...k].map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(isAcceptablePublicKey(k), reference(hex));
    }),
    { numRuns: 200 },
  );
});

/**
 * Writes tests/vectors/ed25519.json: Wycheproof-style Ed25519 verification
 * cases for what Shoal must refuse (docs/security.md §2.10): the eight
 * small-order public keys (with the S = 0 forgery that any of them allows),
 * non-canonical public key encodings (y >= p, and x = 0 with the sign bit set)
 * and non-canonical S (S >= L), beside RFC 8032's valid cases.
 * Run: deno run -A scripts/gen-vectors-ed25519.ts
 * The file is written from constants and arithmetic on integers only (no
 * Shoal code); tests/crypto/ed25519_vectors_test.ts checks the claimed point
 * orders with its own curve arithmetic and runs every case through verify().
 */

const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function le(n: bigint, len = 32): string {
  let s = "";
  for (let i = 0; i < len; i++) {
    s += Number(n & 0xffn).toString(16).padStart(2, "0");
    n >>= 8n;
  }
  return s;
}
function fromLe(hex: string): bigint {
  let n = 0n;
  for (let i = hex.length - 2; i >= 0; i -= 2) {
    n = (n << 8n) | BigInt(parseInt(hex.slice(i, i + 2), 16));
  }
  return n;
}
const SIGN = 1n << 255n;

/** The eight points of small order (canonical encodings), as libsodium's blocklist has them. */
const smallOrderPoints = [
  { encoding: le(1n), order: 1, comment: "the identity (0, 1)" },
  { encoding: le(P - 1n), order: 2, comment: "(0, -1)" },
  { encoding: le(0n), order: 4, comment: "(sqrt(-1), 0)" },
  { encoding: le(SIGN), order: 4, comment: "(-sqrt(-1), 0)" },
  {
    encoding: "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    order: 8,
    comment: "order 8, x even",
  },
  {
    encoding: "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    order: 8,
    comment: "order 8, x odd",
  },
  {
    encoding: "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    order: 8,
    comment: "order 8, x even",
  },
  {
    encoding: "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    order: 8,
    comment: "order 8, x odd",
  },
];

interface Case {
  tcId: number;
  comment: string;
  publicKey: string;
  msg: string;
  sig: string;
  result: "valid" | "invalid";
  flags: string[];
}

const rfc = JSON.parse(
  await Deno.readTextFile(new URL("../tests/vectors/crypto.json", import.meta.url)),
).ed25519.vectors as { publicKey: string; message: string; signature: string }[];

const tests: Case[] = [];
const add = (c: Omit<Case, "tcId">) => tests.push({ tcId: tests.length + 1, ...c });
const hexUtf8 = (s: string) =>
  [...new TextEncoder().encode(s)].map((b) => b.toString(16).padStart(2, "0")).join("");

for (const v of rfc) {
  add({
    comment: "RFC 8032 §7.1",
    publicKey: v.publicKey,
    msg: v.message,
    sig: v.signature,
    result: "valid",
    flags: [],
  });
}

// S = 0 and R = identity: [S]B = R + [h]A holds whenever [h]A is the identity,
// which for the identity key is every message: a forgery of anything.
const zeroSig = le(1n) + le(0n);
for (const p of smallOrderPoints) {
  for (const m of ["", "shoal: any message at all"]) {
    add({
      comment: `small-order public key (${p.comment}), R = identity, S = 0`,
      publicKey: p.encoding,
      msg: hexUtf8(m),
      sig: zeroSig,
      result: "invalid",
      flags: ["SmallOrderPublicKey"],
    });
  }
  // R = A, S = 0: [S]B = R + [h]A holds when (h + 1)·A is the identity.
  add({
    comment: `small-order public key (${p.comment}), R = A, S = 0`,
    publicKey: p.encoding,
    msg: hexUtf8("R = A"),
    sig: p.encoding + le(0n),
    result: "invalid",
    flags: ["SmallOrderPublicKey"],
  });
}

// Non-canonical encodings: y >= p (y = p + 0 .. p + 18, both signs), and -0.
for (let d = 0n; d < 19n; d++) {
  for (const sign of [0n, SIGN]) {
    add({
      comment: `non-canonical public key: y = p + ${d}${sign ? ", sign bit set" : ""}`,
      publicKey: le((P + d) | sign),
      msg: hexUtf8("non-canonical key"),
      sig: zeroSig,
      result: "invalid",
      flags: ["NonCanonicalPublicKey"],
    });
  }
}
for (const y of [1n, P - 1n]) {
  add({
    comment: `non-canonical public key: x = 0 with the sign bit set (y = ${
      y === 1n ? "1" : "p - 1"
    })`,
    publicKey: le(y | SIGN),
    msg: hexUtf8("negative zero"),
    sig: zeroSig,
    result: "invalid",
    flags: ["NonCanonicalPublicKey", "SmallOrderPublicKey"],
  });
}
// The identity key's non-canonical twin y = p + 1 with the forgery signature.
add({
  comment: "identity key encoded as y = p + 1, R = identity, S = 0",
  publicKey: le(P + 1n),
  msg: hexUtf8("shoal: any message at all"),
  sig: zeroSig,
  result: "invalid",
  flags: ["NonCanonicalPublicKey", "SmallOrderPublicKey"],
});

// Non-canonical S: RFC 8032 test 1's signature with S + L, S = L, S = 2^256 - 1.
const t1 = rfc[0];
const r1 = t1.signature.slice(0, 64);
const s1 = fromLe(t1.signature.slice(64));
for (const [what, s] of [["S + L", s1 + L], ["L", L], ["2^256 - 1", (1n << 256n) - 1n]] as const) {
  add({
    comment: `RFC 8032 test 1 with S replaced by ${what} (S >= L)`,
    publicKey: t1.publicKey,
    msg: t1.message,
    sig: r1 + le(s),
    result: "invalid",
    flags: ["NonCanonicalS"],
  });
}

const out = {
  algorithm: "EDDSA (Ed25519, RFC 8032)",
  description: "Verification cases Shoal's verify() must refuse; generated by " +
    "scripts/gen-vectors-ed25519.ts. Hex throughout; msg is the message bytes. " +
    "smallOrderPoints are the canonical encodings of the 8 points of order dividing 8.",
  smallOrderPoints,
  tests,
};
await Deno.writeTextFile(
  new URL("../tests/vectors/ed25519.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log(`wrote ${tests.length} cases`);

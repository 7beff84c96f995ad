/** The grid service directory (docs/discovery.md §3, §5 freshness) against tests/vectors/discovery.json. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex } from "../../lib/codec/mod.ts";
import { formatCap, writekeyFromSeed } from "../../lib/crypto/mod.ts";
import { decodeDirectoryDoc, encodeDirectory } from "../../lib/grid/mod.ts";
import {
  DEFAULT_EXPIRY_GRACE_SECONDS,
  DEFAULT_GSD_VALIDITY_SECONDS,
  type Freshness,
  gsdEntryName,
  GsdError,
  gsdFreshness,
  gsdLinks,
  gsdMeta,
  parseGsdMeta,
  petnameFromNickname,
  validatePetname,
} from "../../lib/discovery/mod.ts";

const V =
  JSON.parse(Deno.readTextFileSync(new URL("../vectors/discovery.json", import.meta.url))).gsd;

/** The vectors' random source: call c (0-based) returns bytes all equal to c + 1. */
function counterRandom() {
  let c = 0;
  return (n: number) => new Uint8Array(n).fill(++c);
}

Deno.test("vectors: petnames and GSD entry names", () => {
  for (const p of V.petnames.valid) {
    assert.equal(validatePetname(p), p);
    assert.equal(gsdEntryName(p), `v1.${p}`);
  }
  for (const p of V.petnames.invalid) {
    assert.throws(() => validatePetname(p), GsdError, JSON.stringify(p));
    assert.throws(() => gsdEntryName(p), GsdError, JSON.stringify(p));
  }
});

Deno.test("vectors: the GSD document encodes reproducibly; gsdLinks keeps v1 links and reports bad ones", async () => {
  const d = V.document;
  const doc = await decodeDirectoryDoc(fromHex(d.cbor), null);
  assert.deepEqual(doc.meta, d.meta);
  assert.deepEqual(parseGsdMeta(doc.meta), d.meta);
  const writekey = writekeyFromSeed(fromHex(d.seed));
  const again = await encodeDirectory(
    (await decodeDirectoryDoc(fromHex(d.cbor), writekey)).entries,
    writekey,
    doc.meta,
    counterRandom(),
  );
  assert.equal(toHex(again), d.cbor);
  const { links, problems } = gsdLinks(doc.entries);
  assert.deepEqual(
    links.map((l) => ({ petname: l.petname, gsaReadcap: l.gsaReadcapText, serverId: l.serverId })),
    d.links,
  );
  for (const l of links) {
    assert.equal(l.gsaReadcap.kind, "mutable-read");
    assert.equal(formatCap(l.gsaReadcap), l.gsaReadcapText);
  }
  assert.equal(problems.length, d.problems.length);
  d.problems.forEach((name: string, i: number) =>
    assert(problems[i].includes(`'${name}'`), problems[i])
  );
  // Entries of other formats ("v2.", no prefix) are skipped silently.
  assert(!problems.some((p) => p.includes("v2.future") || p.includes("README")));
  // Problems name the entry, never the cap it links.
  for (const p of problems) assert(!p.includes("shoal:"), p);
});

Deno.test("vectors: GSD meta (issued, expires) is parsed or refused with GsdError", () => {
  for (const m of V.meta.valid) assert.deepEqual(parseGsdMeta(m), m);
  for (const m of V.meta.invalid) assert.throws(() => parseGsdMeta(m), GsdError, JSON.stringify(m));
  assert.deepEqual(gsdMeta(1000), { issued: 1000, expires: 1000 + DEFAULT_GSD_VALIDITY_SECONDS });
  assert.deepEqual(gsdMeta(1000, 60), { issued: 1000, expires: 1060 });
  assert.equal(DEFAULT_GSD_VALIDITY_SECONDS, 7 * 86400);
  assert.equal(DEFAULT_EXPIRY_GRACE_SECONDS, 7 * 86400);
});

Deno.test("vectors: freshness is fresh up to expires, expired within the grace, then past grace", () => {
  const seen = new Set<Freshness>();
  for (const c of V.freshness) {
    const got = gsdFreshness({ issued: c.issued, expires: c.expires }, c.now, c.grace);
    assert.equal(got, c.expect, JSON.stringify(c));
    seen.add(got);
  }
  assert.equal(seen.size, 3);
  // The default grace is the 7 days of the doc.
  const m = { issued: 0, expires: 100 };
  assert.equal(gsdFreshness(m, 100 + DEFAULT_EXPIRY_GRACE_SECONDS), "expired");
  assert.equal(gsdFreshness(m, 101 + DEFAULT_EXPIRY_GRACE_SECONDS), "expired-past-grace");
});

const RANK: Record<Freshness, number> = { "fresh": 0, "expired": 1, "expired-past-grace": 2 };

Deno.test("property: freshness never improves as time passes", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 30 }),
      fc.nat({ max: 2 ** 30 }),
      fc.nat({ max: 2 ** 31 }),
      fc.nat({ max: 2 ** 31 }),
      (issued, validity, grace, a, b) => {
        const m = gsdMeta(issued, validity);
        const [t1, t2] = [issued + Math.min(a, b), issued + Math.max(a, b)];
        assert(RANK[gsdFreshness(m, t1, grace)] <= RANK[gsdFreshness(m, t2, grace)]);
        assert.equal(gsdFreshness(m, m.expires, grace), "fresh");
        assert.equal(gsdFreshness(m, m.expires + grace + 1, grace), "expired-past-grace");
      },
    ),
  );
});

Deno.test("property: petnameFromNickname always gives a valid petname", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string({ maxLength: 100 }), fc.string({ unit: "grapheme", maxLength: 80 })),
      (nick) => {
        const p = petnameFromNickname(nick);
        assert.equal(validatePetname(p), p);
        if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(nick)) assert.equal(p, nick);
      },
    ),
  );
  assert.equal(petnameFromNickname("my server #1"), "my-server--1");
  assert.equal(petnameFromNickname("--"), "server");
});

Deno.test("fuzz: parseGsdMeta accepts only integer times with expires >= issued", () => {
  const val = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 3 }),
    fc.constant(null),
    fc.bigInt(),
  );
  fc.assert(
    fc.property(fc.record({ issued: val, expires: val }, { requiredKeys: [] }), (m) => {
      let r;
      try {
        r = parseGsdMeta(m);
      } catch (e) {
        if (!(e instanceof GsdError)) throw e;
        return;
      }
      assert(
        Number.isSafeInteger(r.issued) && Number.isSafeInteger(r.expires) && r.expires >= r.issued,
      );
    }),
    { numRuns: 2000 },
  );
});

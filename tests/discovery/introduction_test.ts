/** Introduction texts (docs/discovery.md §2) against tests/vectors/discovery.json. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { base32Encode, toHex } from "../../lib/codec/mod.ts";
import { formatCap, parseCap } from "../../lib/crypto/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import {
  formatIntroductionText,
  IntroductionTextError,
  MAX_INTRODUCTION_URLS,
  parseIntroductionText,
} from "../../lib/discovery/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/discovery.json", import.meta.url)))
  .introduction;

interface Invalid {
  name: string;
  text?: string;
  gsdReadcap?: string;
  url?: string;
  repeatUrl?: number;
  error: string;
}
const textOf = (c: Invalid) =>
  c.repeatUrl ? [c.gsdReadcap!, ...Array(c.repeatUrl).fill(c.url!)].join(",") : c.text!;

/** Secret pieces of a text: cap payloads and swissnums (as they appear in it). */
function secretsIn(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/shoal:[A-Z]{3}-[A-Z]1:([a-z2-7]{20,})/g)) out.push(m[1]);
  for (const m of text.matchAll(/shoal-storage:v1:[a-z2-7]{52}:([a-z2-7]{52})/g)) out.push(m[1]);
  return out;
}

Deno.test("vectors: valid introduction texts parse to the readcap and storage URLs, and format back", () => {
  assert(V.valid.length >= 3);
  for (const v of V.valid) {
    const p = parseIntroductionText(v.text);
    assert.equal(p.gsdReadcap.kind, "dir-read");
    assert.equal(formatCap(p.gsdReadcap), v.gsdReadcap);
    assert.deepEqual(
      p.storageUrls.map((u) => ({
        pin: toHex(u.pin),
        swissnum: toHex(u.swissnum),
        locations: u.locations,
      })),
      v.storageUrls,
    );
    assert.equal(formatIntroductionText(p), v.text.trim());
  }
});

Deno.test("vectors: invalid texts raise IntroductionTextError naming the part, never echoing secrets", () => {
  assert(V.invalid.length >= 15);
  for (const c of V.invalid as Invalid[]) {
    const text = textOf(c);
    assert.throws(
      () => parseIntroductionText(text),
      (e: unknown) => {
        if (!(e instanceof IntroductionTextError)) return false;
        assert(e.message.includes(c.error), `${c.name}: '${e.message}' lacks '${c.error}'`);
        for (const s of secretsIn(text)) {
          assert(!e.message.includes(s), `${c.name}: message echoes a secret`);
        }
        return true;
      },
      c.name,
    );
  }
});

Deno.test("at most 1000 storage URLs; a text without URLs cannot be formatted", () => {
  const m = V.maxUrls;
  assert.equal(m.repeatUrl, MAX_INTRODUCTION_URLS);
  const p = parseIntroductionText([m.gsdReadcap, ...Array(m.repeatUrl).fill(m.url)].join(","));
  assert.equal(p.storageUrls.length, 1000);
  assert.throws(
    () => formatIntroductionText({ gsdReadcap: p.gsdReadcap, storageUrls: [] }),
    IntroductionTextError,
  );
  assert.throws(() => parseIntroductionText(undefined as unknown as string), IntroductionTextError);
});

const good = V.valid[1].text as string;
const goodParts = good.split(",");
/** Texts near valid ones: parts dropped, duplicated, truncated, with characters inserted. */
const nearText = fc.record({
  parts: fc.array(fc.constantFrom(...goodParts, "", "x"), { minLength: 0, maxLength: 5 }),
  at: fc.nat(),
  cut: fc.nat(),
  insert: fc.string({ maxLength: 3 }),
  mode: fc.constantFrom("as-is", "cut", "insert"),
}).map(({ parts, at, cut, insert, mode }) => {
  const t = parts.join(",");
  if (mode === "cut") return t.slice(0, cut % (t.length + 1));
  if (mode === "insert") {
    const i = at % (t.length + 1);
    return t.slice(0, i) + insert + t.slice(i);
  }
  return t;
});

Deno.test("fuzz: parseIntroductionText raises only IntroductionTextError and never a wrong success", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ unit: "binary", maxLength: 60 }),
        nearText,
      ),
      (t) => {
        let p;
        try {
          p = parseIntroductionText(t);
        } catch (e) {
          if (!(e instanceof IntroductionTextError)) throw e;
          for (const s of secretsIn(t)) assert(!e.message.includes(s), "message echoes a secret");
          return;
        }
        // Accepted: every part is what it must be, and the text is the canonical form (trimmed).
        const parts = t.trim().split(",");
        assert.equal(parseCap(parts[0]).kind, "dir-read");
        assert.equal(p.storageUrls.length, parts.length - 1);
        parts.slice(1).forEach((u, i) => assert.deepEqual(parseStorageUrl(u), p.storageUrls[i]));
        assert.equal(formatIntroductionText(p), t.trim());
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("the secret detector used above does find the secrets of a valid text", () => {
  const s = secretsIn(good);
  assert.equal(s.length, goodParts.length);
  const p = parseIntroductionText(good);
  assert(s.includes(base32Encode(p.storageUrls[0].swissnum)));
});

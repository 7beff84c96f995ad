import assert from "node:assert/strict";
import fc from "fast-check";
import { base32Encode, fromHex, toHex } from "../../lib/codec/mod.ts";
import {
  formatLocationHint,
  formatStorageUrl,
  parseLocationHint,
  parseStorageUrl,
  serverIdString,
  StorageUrlError,
} from "../../lib/storage/url.ts";

const V = JSON.parse(
  Deno.readTextFileSync(new URL("../vectors/storage-url.json", import.meta.url)),
);

Deno.test("valid vectors parse to their fields and format back to the same text", () => {
  assert.ok(V.valid.length >= 5);
  for (const v of V.valid) {
    const u = parseStorageUrl(v.text);
    assert.equal(toHex(u.pin), v.pin);
    assert.equal(toHex(u.swissnum), v.swissnum);
    assert.deepEqual(u.locations, v.locations);
    assert.equal(
      formatStorageUrl({
        pin: fromHex(v.pin),
        swissnum: fromHex(v.swissnum),
        locations: v.locations,
      }),
      v.text,
    );
  }
});

Deno.test("invalid vectors are refused with their error, never quoting the swissnum", () => {
  assert.ok(V.invalid.length >= 30);
  const swiss = base32Encode(fromHex(V.valid[0].swissnum));
  for (const v of V.invalid) {
    assert.throws(() => parseStorageUrl(v.text), (e: unknown) => {
      assert.ok(e instanceof StorageUrlError, `${v.text}: ${e}`);
      assert.ok(e.message.includes(v.error), `${v.text}: got "${e.message}", want "${v.error}"`);
      assert.ok(!e.message.includes(swiss.slice(0, 20)), "message quotes the swissnum");
      return true;
    });
  }
});

Deno.test("surrounding whitespace is ignored, inner whitespace is not", () => {
  const t = V.valid[0].text;
  assert.deepEqual(parseStorageUrl(`  ${t}\n`), parseStorageUrl(t));
  assert.throws(() => parseStorageUrl(t.replace("@", " @")), StorageUrlError);
});

Deno.test("serverIdString is the 52-character base32 of the pin", () => {
  const pin = fromHex(V.valid[0].pin);
  assert.equal(serverIdString(pin), base32Encode(pin));
  assert.equal(serverIdString(pin).length, 52);
  assert.ok(V.valid[0].text.includes(serverIdString(pin)));
});

Deno.test("formatStorageUrl refuses fields that would not parse back", () => {
  const ok = { pin: new Uint8Array(32), swissnum: new Uint8Array(32), locations: ["a.example:1"] };
  assert.throws(() => formatStorageUrl({ ...ok, pin: new Uint8Array(31) }), /pin must be 32 bytes/);
  assert.throws(() => formatStorageUrl({ ...ok, swissnum: new Uint8Array(33) }), /swissnum/);
  assert.throws(() => formatStorageUrl({ ...ok, locations: [] }), /at least one location/);
  assert.throws(() => formatStorageUrl({ ...ok, locations: ["a:1,b:2"] }), /","/);
  assert.throws(() => formatStorageUrl({ ...ok, locations: ["a:1;b:2"] }), /";"/);
  assert.throws(() => formatStorageUrl({ ...ok, locations: ["nohost"] }), /PORT/);
});

Deno.test("location hints: host kinds and formatting", () => {
  assert.deepEqual(parseLocationHint("127.0.0.1:7001"), {
    host: "127.0.0.1",
    port: 7001,
    kind: "ipv4",
  });
  assert.deepEqual(parseLocationHint("[::1]:80"), { host: "::1", port: 80, kind: "ipv6" });
  assert.deepEqual(parseLocationHint("a.example:65535"), {
    host: "a.example",
    port: 65535,
    kind: "dns",
  });
  assert.equal(formatLocationHint({ host: "::1", port: 80 }), "[::1]:80");
  assert.equal(formatLocationHint({ host: "127.0.0.1", port: 80 }), "127.0.0.1:80");
});

Deno.test("property: format then parse is the identity", () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z])?$/);
  const hint = fc.oneof(
    fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 65535 }))
      .map(([ls, p]) => `${ls.join(".")}.example:${p}`),
    fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `[${h}]:${p}`),
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uniqueArray(hint, { minLength: 1, maxLength: 16 }),
      (pin, swissnum, locations) => {
        const text = formatStorageUrl({ pin, swissnum, locations });
        assert.ok(!text.includes(","));
        assert.deepEqual(parseStorageUrl(text), { pin, swissnum, locations });
      },
    ),
  );
});

Deno.test("property: arbitrary text either parses or throws StorageUrlError without the swissnum", () => {
  const swiss = "a".repeat(52);
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 40 }), (a, b) => {
      const text = `shoal-storage:v1:${a}${swiss}${b}`;
      try {
        parseStorageUrl(text);
      } catch (e) {
        assert.ok(e instanceof StorageUrlError);
        assert.ok(!e.message.includes(swiss));
      }
    }),
  );
});

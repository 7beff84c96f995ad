/** Grid service announcements (docs/discovery.md §4) against tests/vectors/discovery.json. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as cbor } from "cborg";
import { bytesEqual, fromHex, toHex } from "../../lib/codec/mod.ts";
import { formatStorageUrl, parseStorageUrl } from "../../lib/storage/mod.ts";
import {
  type Announcement,
  AnnouncementError,
  decodeAnnouncement,
  encodeAnnouncement,
  MAX_GSA_BYTES,
} from "../../lib/discovery/mod.ts";

const V =
  JSON.parse(Deno.readTextFileSync(new URL("../vectors/discovery.json", import.meta.url))).gsa;

function fixed(): Announcement {
  return decodeAnnouncement(fromHex(V.valid[0].cbor));
}

Deno.test("vectors: announcements decode to their fields and encode back to the same bytes", () => {
  assert(V.valid.length >= 3);
  for (const v of V.valid) {
    const a = decodeAnnouncement(fromHex(v.cbor));
    assert.equal(a.nickname, v.nickname, v.name);
    assert.equal(toHex(a.serverId), v.serverId);
    assert.equal(a.software, v.software);
    assert.equal(a.announced, v.announced);
    assert.deepEqual(a.storage ? a.storage.storageUrls.map(formatStorageUrl) : null, v.storageUrls);
    assert.deepEqual(a.otherServices, v.otherServices);
    for (const u of a.storage?.storageUrls ?? []) assert(bytesEqual(u.pin, a.serverId));
    assert.equal(toHex(encodeAnnouncement(a)), v.cbor, v.name);
  }
});

Deno.test("vectors: unknown service types are carried; a missing storage service is allowed", () => {
  const other = V.valid.find((v: { otherServices: unknown[] }) => v.otherServices.length > 0);
  const a = decodeAnnouncement(fromHex(other.cbor));
  assert.equal(a.otherServices[0].type, "web-gateway");
  assert(a.storage !== null);
  const none = V.valid.find((v: { storageUrls: unknown }) => v.storageUrls === null);
  assert.equal(decodeAnnouncement(fromHex(none.cbor)).storage, null);
});

Deno.test("vectors: invalid announcements raise AnnouncementError saying what is wrong", () => {
  assert(V.invalid.length >= 20);
  for (const c of V.invalid) {
    assert.throws(
      () => decodeAnnouncement(fromHex(c.cbor)),
      (e: unknown) => e instanceof AnnouncementError && e.message === c.error,
      c.name,
    );
  }
  assert.throws(() => decodeAnnouncement(new Uint8Array(0)), AnnouncementError);
  assert.throws(() => decodeAnnouncement(new Uint8Array([0xff])), AnnouncementError);
});

Deno.test("size limit: 64 KiB is accepted, one byte more is refused, on decode and on encode", () => {
  assert.equal(V.maxBytes, MAX_GSA_BYTES);
  const a = fixed();
  const sized = (pad: number): Announcement => ({
    ...a,
    otherServices: [{ type: "padding", pad: "x".repeat(pad) }],
  });
  const base = encodeAnnouncement(sized(60000)).length;
  const exact = encodeAnnouncement(sized(60000 + MAX_GSA_BYTES - base));
  assert.equal(exact.length, MAX_GSA_BYTES);
  assert.deepEqual(
    decodeAnnouncement(exact).otherServices,
    sized(60000 + MAX_GSA_BYTES - base).otherServices,
  );
  assert.throws(
    () => encodeAnnouncement(sized(60001 + MAX_GSA_BYTES - base)),
    AnnouncementError,
    "exceeds",
  );
  const over = new Uint8Array(MAX_GSA_BYTES + 1);
  over.set(exact);
  assert.throws(
    () => decodeAnnouncement(over),
    (e: unknown) => e instanceof AnnouncementError && e.message.includes("exceeds"),
  );
});

Deno.test("encodeAnnouncement refuses what a reader would refuse", () => {
  const a = fixed();
  const url = a.storage!.storageUrls[0];
  const foreign = { ...url, pin: new Uint8Array(32).fill(9) };
  assert.throws(
    () => encodeAnnouncement({ ...a, storage: { type: "storage", storageUrls: [url, foreign] } }),
    AnnouncementError,
    "pinned",
  );
  assert.throws(() => encodeAnnouncement({ ...a, nickname: "" }), AnnouncementError);
  assert.throws(() => encodeAnnouncement({ ...a, nickname: "x".repeat(65) }), AnnouncementError);
  assert.throws(() => encodeAnnouncement({ ...a, nickname: "a\nb" }), AnnouncementError);
  assert.throws(
    () => encodeAnnouncement({ ...a, serverId: new Uint8Array(31) }),
    AnnouncementError,
  );
  // The storage service is written first, before services of other types.
  const doc = encodeAnnouncement({ ...a, otherServices: [{ type: "zzz" }] });
  const services = decodeAnnouncement(doc);
  assert.equal(services.storage!.storageUrls.length, 1);
  assert.deepEqual(services.otherServices, [{ type: "zzz" }]);
});

Deno.test("#11.12: no control or format character in anything a server announces", () => {
  const a = fixed();
  const bad = [
    "\u0085", // NEL (C1)
    "\u009b", // CSI (C1): a terminal escape in one code unit
    "\u001b", // ESC
    "\u202e", // RIGHT-TO-LEFT OVERRIDE
    "\u202a", // LEFT-TO-RIGHT EMBEDDING
    "\u2066", // LEFT-TO-RIGHT ISOLATE
    "\u2069", // POP DIRECTIONAL ISOLATE
    "\u200e", // LEFT-TO-RIGHT MARK
    "\u061c", // ARABIC LETTER MARK
    "\u200b", // ZERO WIDTH SPACE (Cf)
    "\ufeff", // BOM (Cf)
    "\u2028", // LINE SEPARATOR
    "\u2029", // PARAGRAPH SEPARATOR
  ];
  for (const c of bad) {
    const name = `U+${c.codePointAt(0)!.toString(16).padStart(4, "0")}`;
    for (
      const doc of [
        { nickname: `s${c}1` },
        { software: `shoal/${c}1` },
        {
          services: [
            { type: "storage", storageUrls: a.storage!.storageUrls.map(formatStorageUrl) },
            { type: `x${c}` },
          ],
        },
      ]
    ) {
      const bytes = cbor({
        v: 1,
        nickname: a.nickname,
        serverId: a.serverId,
        software: a.software,
        announced: a.announced,
        services: [{ type: "storage", storageUrls: a.storage!.storageUrls.map(formatStorageUrl) }],
        ...doc,
      });
      assert.throws(
        () => decodeAnnouncement(bytes),
        AnnouncementError,
        `${name} in ${Object.keys(doc)[0]}`,
      );
    }
    assert.throws(() => encodeAnnouncement({ ...a, nickname: `s${c}` }), AnnouncementError, name);
  }
  // Letters, marks and emoji of any script stay allowed.
  for (const ok of ["n\u00f6de", "\u0645\u0631\u0643\u0632", "\u{1F600}", "e\u0301"]) {
    assert.equal(decodeAnnouncement(encodeAnnouncement({ ...a, nickname: ok })).nickname, ok);
  }
});

function checkAccepted(a: Announcement): void {
  assert(a.nickname.length >= 1 && a.nickname.length <= 64);
  for (const t of [a.nickname, a.software, ...a.otherServices.map((o) => o.type)]) {
    assert(!/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(t), "no control or format character");
  }
  assert(a.serverId instanceof Uint8Array && a.serverId.length === 32);
  assert(typeof a.software === "string");
  assert(Number.isSafeInteger(a.announced));
  if (a.storage) {
    assert(a.storage.storageUrls.length >= 1 && a.storage.storageUrls.length <= 16);
    for (const u of a.storage.storageUrls) {
      assert(bytesEqual(u.pin, a.serverId));
      assert.deepEqual(parseStorageUrl(formatStorageUrl(u)), u);
    }
  }
  for (const s of a.otherServices) assert(typeof s.type === "string" && s.type !== "storage");
}

Deno.test("fuzz: garbage bytes are refused only with AnnouncementError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      try {
        checkAccepted(decodeAnnouncement(b));
      } catch (e) {
        if (!(e instanceof AnnouncementError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
});

const base = fixed();
const goodUrl = formatStorageUrl(base.storage!.storageUrls[0]);
const otherUrl = formatStorageUrl({
  ...base.storage!.storageUrls[0],
  pin: new Uint8Array(32).fill(2),
});
const anyValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 33 }),
  fc.constant([]),
  fc.constant({}),
);
const serviceArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant("storage"),
      storageUrls: fc.oneof(
        fc.array(fc.constantFrom(goodUrl, goodUrl, otherUrl, "shoal-storage:v1:", "x"), {
          maxLength: 18,
        }),
        anyValue,
      ),
    }),
  },
  fc.record({ type: fc.oneof(fc.string({ maxLength: 5 }), anyValue), extra: anyValue }, {
    requiredKeys: [],
  }),
  anyValue,
);
/** Mostly `good`, sometimes anything. */
const mostly = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 6, arbitrary: good as fc.Arbitrary<unknown> }, {
    weight: 1,
    arbitrary: anyValue,
  });
const gsaArb = fc.tuple(
  fc.record({
    v: mostly(fc.constant(1)),
    nickname: mostly(fc.string({ maxLength: 70 })),
    serverId: mostly(
      fc.oneof(fc.constant(base.serverId), fc.uint8Array({ minLength: 31, maxLength: 33 })),
    ),
    software: mostly(fc.string({ maxLength: 10 })),
    announced: mostly(fc.integer()),
    services: mostly(fc.array(serviceArb, { maxLength: 3 })),
  }),
  fc.option(fc.constantFrom("v", "nickname", "serverId", "software", "announced", "services"), {
    freq: 6,
  }),
).map(([doc, drop]) => {
  const d: Record<string, unknown> = { ...doc };
  if (drop) delete d[drop];
  return d;
});

Deno.test("fuzz: announcement-shaped documents are refused only with AnnouncementError; accepted ones are valid", () => {
  let accepted = 0;
  fc.assert(
    fc.property(gsaArb, (doc) => {
      let bytes: Uint8Array;
      try {
        bytes = cbor(doc);
      } catch {
        return; // not encodable CBOR: not an input
      }
      try {
        checkAccepted(decodeAnnouncement(bytes));
        accepted++;
      } catch (e) {
        if (!(e instanceof AnnouncementError)) throw e;
      }
    }),
    { numRuns: 4000 },
  );
  assert(
    accepted > 20,
    `only ${accepted} generated announcements were valid; the generator is too weak`,
  );
});

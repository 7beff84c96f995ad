/**
 * Fuzz targets (fast-check) for every parser that reads network or user
 * bytes: CBOR, caps, storage URLs, introduction text, GSA, GSD, directory
 * documents, mutable and immutable share headers (and the UEB), the HTTP
 * client's response parser (heads, chunked bodies) and the HTTPS server's
 * request parser (heads, chunked bodies), the last over real TLS on loopback.
 *
 * Each target asserts that its parser never throws anything but the module's
 * own typed error, never hangs (every input finishes within HANG_MS), and
 * round-trips what it accepts where a formatter exists. Inputs are valid
 * encodings, valid encodings mutated (bytes flipped, inserted, deleted,
 * truncated, duplicated), and random bytes or text.
 *
 * tests/fuzz/parsers_test.ts runs each briefly; scripts/fuzz.ts runs them for
 * longer (`--runs N --seed S --target NAME`).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import tls from "node:tls";
import fc from "fast-check";
import { CborError, decodeCbor, encodeCbor, utf8 } from "../../lib/codec/mod.ts";
import {
  type Cap,
  CapError,
  formatCap,
  parseCap,
  readcapOf,
  verifycapOf,
  writekeyFromSeed,
} from "../../lib/crypto/mod.ts";
import {
  AnnouncementError,
  decodeAnnouncement,
  encodeAnnouncement,
  formatIntroductionText,
  GsdError,
  gsdLinks,
  IntroductionTextError,
  parseGsdMeta,
  parseIntroductionText,
} from "../../lib/discovery/mod.ts";
import {
  blockLength,
  decodeDirectoryDoc,
  decodeUeb,
  DirectoryError,
  encodeDirectory,
  MutableShareError,
  neededHashCount,
  packPrefix,
  packShare,
  unpackShare,
  unpackShareHeader,
} from "../../lib/grid/mod.ts";
import {
  encodeUeb,
  ImmutableFormatError,
  packHeader,
  parseHeader,
} from "../../lib/grid/immutable_format.ts";
import {
  formatStorageUrl,
  generateTlsIdentity,
  parseStorageUrl,
  StorageUrlError,
} from "../../lib/storage/mod.ts";
import { ConnectionLostError, HttpConnection, HttpProtocolError } from "../../lib/storage/http1.ts";
import { serveHttps } from "../../lib/storage/https_server.ts";

/** Longest any single input may take before it counts as a hang. */
export const HANG_MS = 2000;

export interface FuzzTarget {
  name: string;
  /**
   * Set while the target's property fails on a known, reported bug in a
   * parser owned elsewhere: the test suite skips it, scripts/fuzz.ts runs it
   * and reports KNOWN instead of failing. Remove once the bug is fixed.
   */
  known?: string;
  /** Runs in the test suite (per target; the script's --runs overrides). */
  quickRuns: number;
  /** Check `runs` inputs; throws (fast-check's report, with seed and path) on a failure. */
  run(params: fc.Parameters<unknown>): Promise<void>;
}

// ---- input generators -------------------------------------------------------------

type Op =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; v: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; len: number }
  | { op: "truncate"; at: number }
  | { op: "dup"; at: number; len: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({
    op: fc.constant("set" as const),
    at: fc.nat(),
    v: fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x0a, 0x0d, 0x20, 0x3a, 0x2c, 0x40, 0x3b),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("dup" as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 16 }),
  }),
);

function applyOps(b: Uint8Array, ops: Op[]): Uint8Array {
  let x = b;
  for (const o of ops) {
    const at = x.length === 0 ? 0 : o.at % (x.length + 1);
    const cat = (...parts: Uint8Array[]) => {
      const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    };
    switch (o.op) {
      case "flip":
        if (at < x.length) (x = x.slice())[at] ^= 1 << o.bit;
        break;
      case "set":
        if (at < x.length) (x = x.slice())[at] = o.v;
        break;
      case "insert":
        x = cat(x.subarray(0, at), o.bytes, x.subarray(at));
        break;
      case "delete":
        x = cat(x.subarray(0, at), x.subarray(at + o.len));
        break;
      case "truncate":
        x = x.slice(0, at);
        break;
      case "dup":
        x = cat(x.subarray(0, at + o.len), x.subarray(at));
        break;
    }
  }
  return x;
}

/** Valid encodings, mutated valid encodings, and random bytes. */
function bytesInput(valid: fc.Arbitrary<Uint8Array>, maxRandom = 256): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 2, arbitrary: valid },
    {
      weight: 5,
      arbitrary: fc.tuple(valid, fc.array(opArb, { minLength: 1, maxLength: 4 })).map(([b, ops]) =>
        applyOps(b, ops)
      ),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandom }) },
  );
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const fromLatin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** The same for text (mutations act on the UTF-8 bytes; invalid UTF-8 becomes U+FFFD). */
function textInput(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: bytesInput(valid.map(utf8)).map((b) => new TextDecoder().decode(b)) },
    // Splice in characters that matter to these grammars.
    {
      weight: 2,
      arbitrary: fc.tuple(
        valid,
        fc.nat(),
        fc.constantFrom(",", ":", "@", ";", " ", "\n", "[", "]", "%", "\u0000", "\u00e9", "A", "="),
      ).map(
        ([s, at, c]) => s.slice(0, at % (s.length + 1)) + c + s.slice(at % (s.length + 1)),
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  );
}

/** Inputs accepted and refused per target, for scripts/fuzz.ts to show what was exercised. */
export const stats = new Map<string, { accepted: number; refused: number }>();
let current = "";
function count(accepted: boolean): void {
  let s = stats.get(current);
  if (!s) stats.set(current, s = { accepted: 0, refused: 0 });
  if (accepted) s.accepted++;
  else s.refused++;
}

/** Run `fn`; its error must be one of `types`, and it must finish within HANG_MS. */
function typed<T>(types: (abstract new (...a: never[]) => Error)[], fn: () => T): T | undefined {
  const t0 = performance.now();
  let value: T | undefined;
  let error: unknown = null;
  try {
    value = fn();
  } catch (e) {
    error = e;
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) throw new Error(`took ${ms.toFixed(0)} ms on one input (hang)`);
  count(error === null);
  if (error !== null && !types.some((t) => error instanceof t)) {
    const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new Error(`threw an untyped error: ${what}`);
  }
  return value;
}

const syncTarget = <T>(
  name: string,
  quickRuns: number,
  arb: fc.Arbitrary<T>,
  check: (x: T) => void,
): FuzzTarget => ({
  name,
  quickRuns,
  run(params) {
    current = name;
    fc.assert(fc.property(arb, check), params as fc.Parameters<[T]>);
    return Promise.resolve();
  },
});

// ---- fixtures -----------------------------------------------------------------------

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const seedCaps = await (async () => {
  const out: string[] = [];
  for (const kind of ["mutable-write", "dir-write"] as const) {
    const w: Cap = { kind, seed: new Uint8Array(32).fill(kind === "dir-write" ? 5 : 6) };
    out.push(formatCap(w), formatCap(await readcapOf(w)), formatCap(await verifycapOf(w)));
  }
  out.push(formatCap({
    kind: "immutable-read",
    key: new Uint8Array(32).fill(1),
    uebHash: new Uint8Array(32).fill(2),
    k: 3,
    n: 10,
    size: 12345,
  }));
  return out;
})();
const dirReadcap = seedCaps[4];
const mutReadcap = seedCaps[1];

const hostArb = fc.oneof(
  fc.constantFrom("127.0.0.1", "[::1]", "example.org", "a-b.c", "10.0.0.255", "[2001:db8::7]"),
  fc.domain(),
);
const storageUrlArb: fc.Arbitrary<string> = fc.tuple(
  bytes32,
  bytes32,
  fc.uniqueArray(fc.tuple(hostArb, fc.integer({ min: 1, max: 65535 })), {
    minLength: 1,
    maxLength: 4,
    selector: ([h, p]) => `${h.toLowerCase()}:${p}`,
  }),
).map(([pin, swissnum, hints]) => {
  try {
    return formatStorageUrl({ pin, swissnum, locations: hints.map(([h, p]) => `${h}:${p}`) });
  } catch {
    return formatStorageUrl({ pin, swissnum, locations: ["127.0.0.1:7001"] });
  }
});

const metaArb = fc.dictionary(
  fc.string({ maxLength: 8 }),
  fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean()),
  { maxKeys: 3 },
);
const entryName = fc.string({ minLength: 1, maxLength: 12 }).filter((s) =>
  // deno-lint-ignore no-control-regex
  !/[/\u0000-\u001f\u007f]/.test(s) && s !== "." && s !== ".."
);
const writekey = writekeyFromSeed(new Uint8Array(32).fill(9));

function directoryDoc(withWritecaps: boolean): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    fc.uniqueArray(
      fc.record({
        name: entryName,
        readcap: fc.constantFrom(...seedCaps.filter((c) => !/-W1:/.test(c))),
        metadata: metaArb,
      }),
      { maxLength: 4, selector: (e) => e.name.normalize("NFC") },
    ),
    metaArb,
    fc.boolean(),
  ).map(([entries, meta, rw]) =>
    encodeDirectory(
      entries.map((e) => ({
        ...e,
        writecap: withWritecaps && rw && e.readcap === mutReadcap ? seedCaps[0] : undefined,
      })),
      writekey,
      meta,
    )
  );
}

// ---- the parser targets ---------------------------------------------------------------

const cbor = syncTarget(
  "cbor",
  300,
  bytesInput(
    fc.jsonValue({ maxDepth: 3 }).map((v) => {
      try {
        return encodeCbor(v);
      } catch {
        return encodeCbor(null);
      }
    }),
  ),
  (b) => {
    const v = typed([CborError], () => decodeCbor(b));
    if (v === undefined) return;
    // Round trip: what was accepted re-encodes to bytes that decode and re-encode to
    // themselves. (Not `decode(encode(v))` deep-equal to v: FINDING, reported, in
    // lib/codec/cbor.ts, not this slice's file — decodeCbor accepts the float -0.0
    // (f16/f32/f64), which encodeCbor writes as the integer 0, so -0 does not survive;
    // it also accepts floats in a wider encoding than needed, e.g. 1.5 as f64.)
    const once = encodeCbor(v);
    assert.deepEqual(encodeCbor(decodeCbor(once)), once);
  },
);

const caps = syncTarget("caps", 300, textInput(fc.constantFrom(...seedCaps)), (s) => {
  const c = typed([CapError], () => parseCap(s));
  if (c !== undefined) assert.equal(formatCap(c), s, "caps are canonical: format(parse(s)) === s");
});

const storageUrls = syncTarget("storage-url", 300, textInput(storageUrlArb), (s) => {
  const u = typed([StorageUrlError], () => parseStorageUrl(s));
  if (u !== undefined) assert.deepEqual(parseStorageUrl(formatStorageUrl(u)), u);
});

const introduction = syncTarget(
  "introduction-text",
  200,
  textInput(
    fc.array(storageUrlArb, { minLength: 1, maxLength: 3 }).map((urls) =>
      [dirReadcap, ...urls].join(",")
    ),
  ),
  (s) => {
    const t = typed([IntroductionTextError], () => parseIntroductionText(s));
    if (t !== undefined) assert.deepEqual(parseIntroductionText(formatIntroductionText(t)), t);
  },
);

const gsaValid = fc.tuple(
  fc.string({ minLength: 1, maxLength: 20 }),
  bytes32,
  fc.array(fc.tuple(bytes32, fc.integer({ min: 1, max: 65535 })), { minLength: 1, maxLength: 3 }),
  fc.nat(),
).map(([nickname, serverId, urls, announced]) => {
  const storageUrls = urls.map(([swissnum, port]) =>
    parseStorageUrl(formatStorageUrl({ pin: serverId, swissnum, locations: [`127.0.0.1:${port}`] }))
  );
  try {
    return encodeAnnouncement({
      nickname,
      serverId,
      software: "shoal/fuzz",
      announced,
      storage: { type: "storage", storageUrls },
      otherServices: [],
    });
  } catch {
    return encodeAnnouncement({
      nickname: "s",
      serverId,
      software: "shoal/fuzz",
      announced,
      storage: { type: "storage", storageUrls },
      otherServices: [],
    });
  }
});

const gsa = syncTarget("gsa", 200, bytesInput(gsaValid), (b) => {
  const a = typed([AnnouncementError], () => decodeAnnouncement(b));
  if (a !== undefined) assert.deepEqual(decodeAnnouncement(encodeAnnouncement(a)), a);
});

const gsdValid = fc.tuple(
  fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,10}$/), { maxLength: 4 }),
  fc.nat({ max: 2 ** 40 }),
  fc.nat({ max: 2 ** 20 }),
).map(([petnames, issued, validity]) =>
  encodeDirectory(
    petnames.map((p) => ({ name: `v1.${p}`, readcap: mutReadcap, metadata: {} })),
    null,
    { issued, expires: issued + validity },
  )
);

const gsd = syncTarget("gsd", 200, bytesInput(gsdValid), (b) => {
  // The GSD pipeline a client runs on a GSD's plaintext.
  typed([DirectoryError, GsdError], () => {
    const doc = decodeDirectoryDoc(b, null);
    const meta = parseGsdMeta(doc.meta);
    const { links } = gsdLinks(doc.entries);
    for (const l of links) assert.equal(formatCap(l.gsaReadcap), l.gsaReadcapText);
    // Round trip: the entries and meta re-encode to a document that decodes the same.
    const again = decodeDirectoryDoc(encodeDirectory(doc.entries, null, doc.meta), null);
    assert.deepEqual(again, doc);
    assert.deepEqual(parseGsdMeta(again.meta), meta);
  });
});

const directory = syncTarget(
  "directory",
  200,
  fc.tuple(bytesInput(directoryDoc(true)), fc.boolean()),
  ([b, withKey]) => {
    const key = withKey ? writekey : null;
    const doc = typed([DirectoryError], () => decodeDirectoryDoc(b, key));
    if (doc === undefined) return;
    if (!withKey) { for (const e of doc.entries) assert.equal(e.writecap, undefined); }
    const again = decodeDirectoryDoc(encodeDirectory(doc.entries, key, doc.meta), key);
    assert.deepEqual(again, doc);
  },
);

const mutableValid = fc.tuple(
  fc.nat({ max: 2 ** 40 }),
  bytes32,
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.integer({ min: 1, max: 10 }),
  fc.integer({ min: 0, max: 10 }),
  fc.nat({ max: 300 }),
  fc.nat(),
  fc.uint8Array({ minLength: 64, maxLength: 64 }),
).map(([seqnum, rootHash, salt, k, extra, dataLength, sh, sig]) => {
  const n = k + extra;
  const prefixBytes = packPrefix({ seqnum, rootHash, salt, k, n, dataLength });
  const hashes = Array.from({ length: neededHashCount(n) }, (_, i) => new Uint8Array(32).fill(i));
  return {
    prefixBytes,
    sh: sh % n,
    sig,
    hashes,
    block: new Uint8Array(blockLength(dataLength, k)),
  };
});

const mutableShare = syncTarget(
  "mutable-share",
  300,
  bytesInput(
    mutableValid.map(({ prefixBytes, sh, sig, hashes, block }) => {
      try {
        return packShare(prefixBytes, new Uint8Array(32).fill(4), sig, sh, hashes, block);
      } catch {
        return prefixBytes;
      }
    }),
    400,
  ),
  (b) => {
    const h = typed([MutableShareError], () => unpackShareHeader(b));
    if (h === undefined) return;
    const whole = typed([MutableShareError], () => unpackShare(b));
    if (whole === undefined) return;
    const again = packShare(
      whole.prefixBytes,
      whole.publicKey,
      whole.signature,
      whole.shareNumber,
      whole.neededHashes,
      whole.block,
    );
    assert.deepEqual(again, b, "an accepted share re-packs to the same bytes");
  },
);

const uebValid = fc.tuple(
  fc.nat({ max: 2 ** 40 }),
  fc.integer({ min: 1, max: 256 }),
  fc.nat(255),
  fc.integer({ min: 1, max: 64 }),
  bytes32,
  bytes32,
).map(([size, k, extra, segs, shareRoot, ciphertextRoot]) =>
  encodeUeb({
    size,
    k,
    n: Math.min(256, k + extra),
    segmentSize: k * segs,
    shareRoot,
    ciphertextRoot,
  })
);

const immutableShare = syncTarget(
  "immutable-share",
  300,
  fc.oneof(
    bytesInput(
      fc.tuple(fc.nat(), fc.integer({ min: 1, max: 1024 })).map(([s, l]) => packHeader(s, l)),
    ),
    bytesInput(uebValid),
  ),
  (b) => {
    const h = typed([ImmutableFormatError], () => parseHeader(b));
    if (h !== undefined) {
      assert.deepEqual(packHeader(h.shareNumber, h.uebLength), b.subarray(0, 20));
    }
    const u = typed([ImmutableFormatError], () => decodeUeb(b));
    if (u !== undefined) assert.deepEqual(decodeUeb(encodeUeb(u)), u);
  },
);

// ---- HTTP: the client's response parser ------------------------------------------------

/** A socket stand-in for HttpConnection: records writes, lets the test push bytes. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  readyState = "open";
  setNoDelay() {}
  cork() {}
  uncork() {}
  write(_b: Uint8Array, cb?: () => void) {
    cb?.();
    return true;
  }
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.readyState = "closed";
    queueMicrotask(() => this.emit("close"));
  }
}

interface ResponseCase {
  wire: Uint8Array;
  /** The body a correct parser returns, when `wire` is an unmutated valid response. */
  body: Uint8Array | null;
  splits: number[];
}

const responseArb: fc.Arbitrary<ResponseCase> = fc.tuple(
  fc.constantFrom(200, 204, 206, 404, 500),
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom("length", "chunked", "close"),
  fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 6 }),
  fc.array(
    fc.tuple(fc.constantFrom("X-A", "Server", "Content-Type"), fc.stringMatching(/^[ -~]{0,12}$/)),
    { maxLength: 3 },
  ),
  fc.array(fc.nat(), { maxLength: 4 }),
  fc.option(fc.array(opArb, { minLength: 1, maxLength: 3 }), { freq: 2 }),
).map(([status, body, framing, sizes, extra, splits, ops]) => {
  let head = `HTTP/1.1 ${status} X\r\n`;
  for (const [k, v] of extra) head += `${k}: ${v.trim()}\r\n`;
  let payload = "";
  const b = status === 204 ? new Uint8Array(0) : body;
  if (status !== 204) {
    if (framing === "length") {
      head += `Content-Length: ${b.length}\r\n`;
      payload = latin1(b);
    } else if (framing === "chunked") {
      head += "Transfer-Encoding: chunked\r\n";
      let o = 0;
      let i = 0;
      while (o < b.length) {
        const n = Math.min(sizes[i++ % sizes.length], b.length - o);
        payload += `${n.toString(16)}${i % 3 === 0 ? ";ext=1" : ""}\r\n${
          latin1(b.subarray(o, o + n))
        }\r\n`;
        o += n;
      }
      payload += "0\r\n\r\n";
    } else {
      head += "Connection: close\r\n";
      payload = latin1(b);
    }
  }
  const wire = fromLatin1(head + "\r\n" + payload);
  return ops ? { wire: applyOps(wire, ops), body: null, splits } : { wire, body: b, splits };
});

const httpResponse: FuzzTarget = {
  name: "http-response",
  quickRuns: 200,
  async run(params) {
    current = "http-response";
    await fc.assert(
      fc.asyncProperty(responseArb, async ({ wire, body, splits }) => {
        const sock = new FakeSocket();
        const conn = new HttpConnection(sock as unknown as tls.TLSSocket);
        const p = conn.request({
          method: "GET",
          path: "/",
          host: "h",
          headers: [],
          maxResponseBytes: 200,
          timeoutMs: HANG_MS,
        }).then((r) => r, (e) => e as Error);
        // Deliver in pieces, then close the connection.
        const cuts = [...new Set(splits.map((s) => s % (wire.length + 1)))].sort((a, b) => a - b);
        let last = 0;
        for (const c of [...cuts, wire.length]) {
          if (c > last && !sock.destroyed) sock.emit("data", wire.subarray(last, c));
          last = Math.max(last, c);
        }
        if (!sock.destroyed) sock.emit("end");
        const r = await p;
        count(!(r instanceof Error));
        if (r instanceof Error) {
          assert.ok(
            r instanceof HttpProtocolError || r instanceof ConnectionLostError,
            `untyped error: ${r.name}: ${r.message}`,
          );
          if (body !== null && body.length <= 200) {
            assert.fail(`valid response refused: ${r.message}`);
          }
          return;
        }
        // The parser takes any three-digit status from 200 (RFC 9110 defines 100..599; callers
        // treat anything but 2xx as a failure, so 600..999 is harmless).
        assert.ok(r.status >= 200 && r.status <= 999);
        if (body !== null) assert.deepEqual(r.body, body, "the body a valid response carries");
        conn.destroy();
      }),
      params as fc.Parameters<[ResponseCase]>,
    );
  },
};

// ---- HTTP: the server's request parser, over real TLS ---------------------------------

interface RequestCase {
  wire: Uint8Array;
  /** What the echo handler must report for an unmutated valid request. */
  expect: string | null;
}

const requestArb: fc.Arbitrary<RequestCase> = fc.tuple(
  fc.constantFrom("GET", "POST", "PUT"),
  fc.stringMatching(/^\/[a-z0-9/._~-]{0,20}$/),
  fc.uint8Array({ maxLength: 200 }),
  fc.constantFrom("length", "chunked"),
  fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 4 }),
  fc.array(
    fc.tuple(fc.constantFrom("X-A", "Accept", "User-Agent"), fc.stringMatching(/^[!-~]{0,12}$/)),
    { maxLength: 3 },
  ),
  fc.option(fc.array(opArb, { minLength: 1, maxLength: 3 }), { freq: 2 }),
).map(([method, path, body, framing, sizes, extra, ops]) => {
  const b = method === "GET" ? new Uint8Array(0) : body;
  let head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
  for (const [k, v] of extra) head += `${k}: ${v}\r\n`;
  let payload = "";
  if (method !== "GET") {
    if (framing === "length") {
      head += `Content-Length: ${b.length}\r\n`;
      payload = latin1(b);
    } else {
      head += "Transfer-Encoding: chunked\r\n";
      let o = 0;
      let i = 0;
      while (o < b.length) {
        const n = Math.min(sizes[i++ % sizes.length], b.length - o);
        payload += `${n.toString(16)}\r\n${latin1(b.subarray(o, o + n))}\r\n`;
        o += n;
      }
      payload += "0\r\n\r\n";
    }
  }
  const wire = fromLatin1(head + "\r\n" + payload);
  // The handler sees the path as a URL (dot segments resolved).
  const seen = new URL("https://x" + path).pathname;
  const expect = `${method} ${seen} ${b.length} ${[...b].reduce((h, x) => (h * 31 + x) >>> 0, 7)}`;
  return ops ? { wire: applyOps(wire, ops), expect: null } : { wire, expect };
});

/** Send `wire` on a fresh TLS connection, half-close, collect the whole reply. */
async function exchange(port: number, wire: Uint8Array): Promise<string> {
  const sock = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
  const chunks: Uint8Array[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("secureConnect", () => resolve());
      sock.once("error", reject);
    });
    const done = new Promise<void>((resolve) => {
      sock.on("data", (d: Uint8Array) => chunks.push(d));
      sock.on("close", () => resolve());
      sock.on("error", () => resolve());
    });
    sock.end(wire);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), HANG_MS * 2))),
    ]);
    clearTimeout(timer);
    if (hung) throw new Error("the server neither answered nor closed (hang)");
  } finally {
    sock.destroy();
  }
  return latin1(Uint8Array.from(chunks.flatMap((c) => [...c])));
}

const ID = await generateTlsIdentity(["127.0.0.1"]);

/** An HTTPS server whose handler echoes method, path, body length and a body hash. */
function echoServer() {
  return serveHttps({
    hostname: "127.0.0.1",
    port: 0,
    certPem: ID.certPem,
    keyPem: ID.keyPem,
    headTimeoutMs: HANG_MS,
    bodyTimeoutMs: HANG_MS,
    idleTimeoutMs: HANG_MS,
    log: () => {},
    handler: async (req) => {
      const b = new Uint8Array(await req.arrayBuffer());
      const path = new URL(req.url).pathname;
      return new Response(
        `${req.method} ${path} ${b.length} ${[...b].reduce((h, x) => (h * 31 + x) >>> 0, 7)}`,
      );
    },
  });
}

async function withEchoServer(fn: (port: number) => Promise<void>): Promise<void> {
  const server = echoServer();
  try {
    await fn(server.addr.port);
    // Still serving after all that.
    const after = await exchange(
      server.addr.port,
      utf8("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert.match(after, /^HTTP\/1\.1 200 /);
  } finally {
    server.closeAll();
    server.close();
    await server.finished;
  }
}

const httpRequest: FuzzTarget = {
  name: "http-request",
  quickRuns: 40,
  run(params) {
    current = "http-request";
    return withEchoServer((port) =>
      fc.assert(
        fc.asyncProperty(requestArb, async ({ wire, expect }) => {
          const reply = await exchange(port, wire);
          if (reply === "") {
            // Closing without a word is allowed only for garbage.
            assert.equal(expect, null, "a valid request got no reply");
            return;
          }
          const m = /^HTTP\/1\.1 (\d{3}) /.exec(reply);
          assert.ok(m, `not an HTTP/1.1 reply: ${JSON.stringify(reply.slice(0, 60))}`);
          const status = Number(m[1]);
          count(status === 200);
          assert.notEqual(status, 500, "the server failed internally");
          if (expect !== null) {
            assert.equal(status, 200, `valid request refused: ${reply.slice(0, 80)}`);
            assert.ok(reply.endsWith(expect), `echo: ${JSON.stringify(reply.slice(-80))}`);
          }
        }),
        params as fc.Parameters<[RequestCase]>,
      )
    );
  },
};

/**
 * Chunked framing requires CRLF after every chunk-size and trailer line: a
 * chunked request in which one of those CRLFs is a bare LF must be refused
 * (#11.16; this target found the server accepting them before the fix).
 */
const httpRequestCrlf: FuzzTarget = {
  name: "http-request-crlf",
  quickRuns: 20,
  run(params) {
    current = "http-request-crlf";
    const arb = fc.tuple(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 4 }),
      fc.nat(),
    ).map(([chunks, pick]) => {
      // The CRLFs that end chunk-size lines and the trailer section.
      const lines = [...chunks.map((c) => `${c.length.toString(16)}\r\n`), "0\r\n", "\r\n"];
      const bad = pick % lines.length;
      let body = "";
      lines.forEach((l, i) => {
        body += i === bad ? l.replace("\r\n", "\n") : l;
        if (i < chunks.length) body += latin1(chunks[i]) + "\r\n";
      });
      return fromLatin1(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
          body,
      );
    });
    return withEchoServer((port) =>
      fc.assert(
        fc.asyncProperty(arb, async (wire) => {
          const reply = await exchange(port, wire);
          const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(reply)?.[1] ?? 0);
          count(status === 400);
          assert.ok(reply === "" || status === 400, `bare LF accepted: ${reply.slice(0, 40)}`);
        }),
        params as fc.Parameters<[Uint8Array]>,
      )
    );
  },
};

export const targets: FuzzTarget[] = [
  cbor,
  caps,
  storageUrls,
  introduction,
  gsa,
  gsd,
  directory,
  mutableShare,
  immutableShare,
  httpResponse,
  httpRequest,
  httpRequestCrlf,
];

/**
 * Child process of immutable_large_test.ts: a plain client process (like
 * `shoal client put/get`) that uploads and downloads a generated file on the
 * servers whose storage URLs it gets as arguments, and prints one JSON line
 * with its memory figures and the SHA-256 of what it sent and got back.
 * Usage: deno run -A immutable_large_child.ts SIZE URL...
 */
import { createHash } from "node:crypto";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { Grid, ServerList } from "../../lib/grid/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import { generatedSource } from "../helpers/sources.ts";

const CHUNK = 1024 * 1024;
const [sizeText, ...urls] = Deno.args;
const size = Number(sizeText);
const seed = randomBytes(32);

const src = generatedSource(size, seed);

async function digest(stream: ReadableStream<Uint8Array>): Promise<string> {
  const h = createHash("sha256");
  for await (const c of stream) h.update(c);
  return h.digest("hex");
}

const pool = new ClientPool({ timeoutMs: 30_000 });
try {
  const grid = new Grid({
    servers: new ServerList(urls.map((u) => pool.server(parseStorageUrl(u)))),
    leaseSecret: randomBytes(32),
  });
  const want = await digest(src.open());
  const rssStart = Deno.memoryUsage().rss;
  let rssPeak = rssStart;
  const timer = setInterval(() => (rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss)), 20);
  const r = await grid.uploadImmutable(src, {
    k: 3,
    n: 10,
    happy: 7,
    convergenceSecret: randomBytes(32),
  });
  const got = await digest(grid.downloadImmutable(r.cap));
  const mid = await digest(
    grid.downloadImmutable(r.cap, { offset: 50 * CHUNK - 7, length: 3 * CHUNK }),
  );
  clearInterval(timer);
  console.log(
    JSON.stringify({
      rssStart,
      rssPeak,
      want,
      got,
      placed: r.placed.length,
      midLength: mid.length,
    }),
  );
} finally {
  pool.close();
}

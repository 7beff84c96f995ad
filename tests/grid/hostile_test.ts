/**
 * The client against hostile and slow servers (issue 11: findings 1, 4, 9),
 * through tests/helpers/hostile.ts: real storage processes behind a
 * misbehaving TLS proxy, and a blackholed TCP port.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import {
  Grid,
  type ImmutableSource,
  NotEnoughServersError,
  permuteServers,
  ServerList,
  SourceChangedError,
  writeKeysFromSeed,
} from "../../lib/grid/mod.ts";
import {
  convergenceKey,
  immutableStorageIndex,
  parseCap,
  randomBytes,
  sha256,
} from "../../lib/crypto/mod.ts";
import { toHex } from "../../lib/codec/mod.ts";
import { encodingParamsBytesForTest } from "./immutable_helpers.ts";
import {
  parseStorageUrl,
  PinMismatchError,
  StorageClient,
  StorageDeadlineError,
} from "../../lib/storage/mod.ts";
import { TestGrid } from "../helpers/grid.ts";
import { GridNode } from "../../lib/roles/gridnode.ts";
import { ROTATE_EVERY } from "../../lib/discovery/refresh.ts";
import { setConfig, startJoinedGrid } from "../helpers/joined_grid.ts";
import { freePort, startStorageServer } from "../helpers/storage_process.ts";
import {
  HostileProxy,
  identityOf,
  type RecordedRequest,
  send,
  tcpBlackhole,
  urlAt,
} from "../helpers/hostile.ts";
import { readAll } from "../helpers/streams.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Reject if `p` takes longer than `ms` (the bound a test asserts; not a race it hopes to win). */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t0 = performance.now();
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    console.log(`${what}: ${Math.round(performance.now() - t0)} ms`);
  }
}

Deno.test("a trickling server: every request ends at its absolute deadline", opts, async () => {
  const g = await TestGrid.start(1);
  const proxy = await HostileProxy.start(g.servers[0].node.dir, g.servers[0].url);
  const client = new StorageClient(parseStorageUrl(proxy.url), {
    timeoutMs: 1000,
    deadlineMs: 2000,
  });
  try {
    // Honest pass-through first: the proxy is transparent.
    assertEquals((await client.version()).protocol > 0, true);
    proxy.rule = () => ({ drip: { intervalMs: 200 } });
    const t0 = performance.now();
    await assertRejects(() => client.version(), StorageDeadlineError);
    const took = performance.now() - t0;
    assert(took < 4000, `the deadline held (${took} ms)`);
    proxy.rule = null;
    assertEquals((await client.listImmutable(randomBytes(16))).length, 0);
  } finally {
    client.close();
    await proxy.close();
    await g.close();
  }
});

// ---------------------------------------------------------------- helpers

const SECRET = randomBytes(32);

/** A Grid over these storage URLs, with its own client pool (closed by the returned close). */
function gridOver(urls: string[], timeoutMs = 5000): { grid: Grid; close(): void } {
  const pool = new ClientPool({ timeoutMs });
  const servers = new ServerList(urls.map((u) => pool.server(parseStorageUrl(u))));
  return {
    grid: new Grid({ servers, leaseSecret: randomBytes(32), mutableEncoding: { k: 2, n: 4 } }),
    close: () => pool.close(),
  };
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function header(r: RecordedRequest, name: string): string | undefined {
  return r.headers.find(([k]) => k === name.toLowerCase())?.[1];
}

// ---------------------------------------------------------------- 11.1

Deno.test(
  "11.1: an upload secret learned by one server is refused by every other",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const proxy = await HostileProxy.start(g.servers[0].node.dir, g.servers[0].url);
    const urls = [proxy.url, ...g.urls([1, 2, 3])];
    const { grid, close } = gridOver(urls);
    const replayed: { status: number; what: string }[] = [];
    try {
      // The hostile server, on the first PATCH it sees, uses the upload secret it
      // was given on every other server: abort every share, overwrite every share.
      let attacked = false;
      proxy.rule = async (req) => {
        if (attacked || req.method !== "PATCH") return undefined;
        attacked = true;
        const secret = header(req, "x-shoal-upload-secret");
        assert(secret, "the PATCH carries an upload secret");
        // PATCH {prefix}/immutable/{SI}/{share}: the same upload's other shares.
        const prefix = req.path.slice(0, req.path.lastIndexOf("/"));
        for (const url of g.urls([1, 2, 3])) {
          for (let sh = 0; sh < 4; sh++) {
            const base = `${prefix}/${sh}`;
            const garbage = new Uint8Array(64).fill(0xee);
            const w = await send(url, {
              method: "PATCH",
              path: base,
              headers: [
                ["x-shoal-upload-secret", secret],
                ["content-type", "application/octet-stream"],
                ["content-range", `bytes 0-63/*`],
              ],
              body: garbage,
            });
            replayed.push({ status: w.status, what: `overwrite share ${sh}` });
            const a = await send(url, {
              method: "PUT",
              path: `${base}/abort`,
              headers: [["x-shoal-upload-secret", secret]],
            });
            replayed.push({ status: a.status, what: `abort share ${sh}` });
          }
        }
        return undefined;
      };
      const data = randomBytes(300_000);
      const r = await grid.uploadImmutable(data, {
        k: 2,
        n: 4,
        happy: 3,
        convergenceSecret: SECRET,
      });
      assert(attacked, "the hostile server saw the upload");
      const accepted = replayed.filter((x) => x.status >= 200 && x.status < 300);
      assertEquals(accepted, [], "no other server accepted the replayed secret");
      assertEquals(await readAll(grid.downloadImmutable(r.cap)), data);
      // Every share any server holds is intact (none was overwritten). The hostile
      // server's own share may be missing: its PATCH was held while it attacked,
      // so the upload may have gone on without it.
      const check = await grid.checkImmutable(r.cap);
      assert(check.recoverable);
      const shares = check.servers.flatMap((s) => s.shares);
      assertEquals(shares.filter((sh) => !sh.ok), [], "every stored share is valid");
      assert(check.sharesFound >= 3, `${check.sharesFound} distinct shares found`);
    } finally {
      close();
      await proxy.close();
      await g.close();
    }
  },
);

Deno.test(
  "11.1: a server that acknowledges but stores garbage is not counted as placed",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const proxy = await HostileProxy.start(g.servers[0].node.dir, g.servers[0].url);
    proxy.rule = (req) =>
      req.method === "PATCH"
        ? { rewrite: (r) => ({ ...r, body: r.body.map((b) => b ^ 0x5a) }) }
        : undefined;
    const { grid, close } = gridOver([proxy.url, ...g.urls([1, 2, 3])]);
    const hostileId = parseStorageUrl(proxy.url).pin;
    try {
      const data = randomBytes(200_000);
      // happy 3 of 4: the three honest servers are enough; the liar is not among the placed.
      const r = await grid.uploadImmutable(data, { k: 2, n: 4, happy: 3, convergenceSecret: null });
      const ids = r.placed.map((p) => toHex(p.serverId));
      assert(!ids.includes(toHex(hostileId)), "the garbage-storing server is not counted");
      assertEquals(new Set(r.placed.flatMap((p) => p.shares)).size >= 3, true);
      assertEquals(await readAll(grid.downloadImmutable(r.cap)), data);
      // happy 4 of 4: only three servers hold what was written, so put must fail, clearly.
      await assertRejects(
        () =>
          grid.uploadImmutable(randomBytes(1000), {
            k: 2,
            n: 4,
            happy: 4,
            convergenceSecret: null,
          }),
        NotEnoughServersError,
      );
    } finally {
      close();
      await proxy.close();
      await g.close();
    }
  },
);

// ---------------------------------------------------------------- 11.9

Deno.test(
  "11.9: a file that changes between the hashing and the encrypting read is not uploaded",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const { grid, close } = gridOver(g.urls());
    try {
      const first = randomBytes(100_000);
      const second = first.slice();
      second[5000] ^= 1;
      let opens = 0;
      const source: ImmutableSource = {
        size: first.length,
        open: () => {
          const data = opens++ === 0 ? first : second;
          return new ReadableStream({
            start(c) {
              c.enqueue(data.slice());
              c.close();
            },
          });
        },
      };
      const o = { k: 2, n: 4, happy: 3, convergenceSecret: SECRET };
      await assertRejects(() => grid.uploadImmutable(source, o), SourceChangedError, "changed");
      assertEquals(opens, 2);
      // Nothing landed at the storage index of the first contents' key.
      const key = convergenceKey(SECRET, encodingParamsBytesForTest(o), sha256(first));
      const si = immutableStorageIndex(key);
      for (const s of grid.servers.all()) assertEquals(await s.storage.listImmutable(si), []);
    } finally {
      close();
      await g.close();
    }
  },
);

// ---------------------------------------------------------------- 11.4

/**
 * Every client operation on a 4-server grid (k=2, n=4, happy=3) while one
 * server misbehaves; each must end within BOUND_MS. The request deadline is
 * 2 × 30 s here, so it is the grid layer's straggler handling, not the
 * deadline, that keeps each operation short.
 */
const BOUND_MS = 20_000;

async function everyOperation(urls: string[], before: { dir: string; file: string; mut: string }) {
  const { grid, close } = gridOver(urls, 30_000);
  try {
    const data = randomBytes(150_000);
    const put = await within(
      BOUND_MS,
      "put",
      grid.uploadImmutable(data, { k: 2, n: 4, happy: 3, convergenceSecret: null }),
    );
    assertEquals(await within(BOUND_MS, "get", readAll(grid.downloadImmutable(put.cap))), data);
    assertEquals(
      (await within(BOUND_MS, "get (old file)", readAll(grid.downloadImmutable(before.file))))
        .length,
      1000,
    );
    const ls = await within(BOUND_MS, "ls", grid.listDirectory(before.dir));
    assertEquals(ls.entries.map((e) => e.name), ["a"]);
    await within(BOUND_MS, "ln", grid.setEntry(before.dir, "b", put.cap));
    assertEquals(
      (await within(BOUND_MS, "ls after ln", grid.listDirectory(before.dir))).entries.length,
      2,
    );
    const m = await within(BOUND_MS, "mutable read", grid.readMutable(before.mut));
    assertEquals(new TextDecoder().decode(m.contents), "version 1");
    await within(BOUND_MS, "mutable write", grid.writeMutable(before.mut, bytesOf("version 2")));
    const m2 = await within(BOUND_MS, "mutable read after write", grid.readMutable(before.mut));
    assertEquals(new TextDecoder().decode(m2.contents), "version 2");
    const { writecap } = await within(
      BOUND_MS,
      "mutable create",
      grid.createMutableFile(bytesOf("x")),
    );
    assertEquals(
      (await within(BOUND_MS, "read new", grid.readMutable(writecap))).contents,
      bytesOf("x"),
    );
    await within(BOUND_MS, "mkdir", grid.createDirectory());
  } finally {
    close();
  }
}

/** A directory with one entry, an immutable file and a mutable file, made while every server is honest. */
async function setUp(urls: string[]) {
  const { grid, close } = gridOver(urls);
  try {
    const file = (await grid.uploadImmutable(randomBytes(1000), {
      k: 2,
      n: 4,
      happy: 4,
      convergenceSecret: null,
    })).cap;
    const dir = await grid.createDirectory();
    await grid.setEntry(dir, "a", file);
    const { writecap: mut } = await grid.createMutableFile(bytesOf("version 1"));
    return { dir, file, mut };
  } finally {
    close();
  }
}

Deno.test("11.4: one server trickling a byte a second sets no one's pace", opts, async () => {
  const g = await TestGrid.start(4);
  const proxy = await HostileProxy.start(g.servers[3].node.dir, g.servers[3].url);
  const urls = [...g.urls([0, 1, 2]), proxy.url];
  try {
    const before = await setUp(urls);
    proxy.rule = () => ({ drip: { intervalMs: 1000 } });
    await everyOperation(urls, before);
  } finally {
    await proxy.close();
    await g.close();
  }
});

Deno.test("11.4: one server that stalls mid-response sets no one's pace", opts, async () => {
  const g = await TestGrid.start(4);
  const proxy = await HostileProxy.start(g.servers[3].node.dir, g.servers[3].url);
  const urls = [...g.urls([0, 1, 2]), proxy.url];
  try {
    const before = await setUp(urls);
    proxy.rule = () => ({ stallAfter: 20 });
    await everyOperation(urls, before);
  } finally {
    await proxy.close();
    await g.close();
  }
});

Deno.test(
  "11.4: one blackholed server (TCP accepted, no TLS ever) sets no one's pace",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const hole = await tcpBlackhole();
    try {
      const before = await setUp(g.urls());
      await g.stop(3);
      await everyOperation([...g.urls([0, 1, 2]), urlAt(g.servers[3].url, hole.port)], before);
    } finally {
      await hole.close();
      await g.close();
    }
  },
);

Deno.test(
  "11.4: a large upload does not stall on a server that stops acknowledging",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const proxy = await HostileProxy.start(g.servers[3].node.dir, g.servers[3].url);
    // Allocation goes through; every PATCH is stored but acknowledged a byte a second,
    // so that server's unacknowledged PATCHes (k = 1: a whole 16 MiB copy) would fill the
    // upload's 12 MiB in-flight budget.
    proxy.rule = (req) => (req.method === "PATCH" ? { drip: { intervalMs: 1000 } } : undefined);
    const { grid, close } = gridOver([...g.urls([0, 1, 2]), proxy.url], 30_000);
    try {
      const data = randomBytes(16 * 1024 * 1024);
      const r = await within(
        BOUND_MS + 10_000,
        "put 16 MiB",
        grid.uploadImmutable(data, { k: 1, n: 4, happy: 3, convergenceSecret: null }),
      );
      const hostile = toHex(parseStorageUrl(proxy.url).pin);
      assert(
        !r.placed.some((p) => toHex(p.serverId) === hostile),
        "the stalled server is not counted",
      );
      const back = await within(BOUND_MS, "get 16 MiB", readAll(grid.downloadImmutable(r.cap)));
      assertEquals(back.length, data.length);
      assert(back.every((b, i) => b === data[i]), "the file reads back intact");
    } finally {
      close();
      await proxy.close();
      await g.close();
    }
  },
);

Deno.test(
  "11.4: a server that answers the map but trickles block reads does not stall a mutable read",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    const proxy = await HostileProxy.start(g.servers[3].node.dir, g.servers[3].url);
    const urls = [...g.urls([0, 1, 2]), proxy.url];
    const hostile = toHex(parseStorageUrl(proxy.url).pin);
    const { grid, close } = gridOver(urls, 30_000);
    try {
      // A mutable file too large to arrive with the map (its blocks are read
      // separately) whose permuted ring puts the hostile server first.
      const contents = randomBytes(200_000);
      let cap = "";
      for (let i = 0; i < 40 && !cap; i++) {
        const { writecap } = await grid.createMutableFile(contents);
        const keys = await writeKeysFromSeed((parseCap(writecap) as { seed: Uint8Array }).seed);
        const first = permuteServers(keys.storageIndex, grid.servers.all())[0];
        if (toHex(first.serverId) === hostile) cap = writecap;
      }
      assert(cap, "found a file whose ring starts at the hostile server");
      proxy.rule = (req) =>
        req.method === "GET" && req.path.includes("/mutable/")
          ? { drip: { intervalMs: 1000 } }
          : undefined;
      const r = await within(BOUND_MS, "mutable read (200 kB)", grid.readMutable(cap));
      assertEquals(r.contents, contents);
    } finally {
      close();
      await proxy.close();
      await g.close();
    }
  },
);

Deno.test(
  "11.4: a refresh whose first server trickles answers from the others",
  opts,
  async () => {
    const g = await startJoinedGrid({ servers: 4 });
    let proxy: HostileProxy | null = null;
    let node: GridNode | null = null;
    try {
      node = (await GridNode.load(g.clientDir, { timeoutMs: 30_000 }))!;
      // The server the next quick check asks first (refresh.ts: rotate by cursor / ROTATE_EVERY).
      const st = node.state;
      const first = st.servers[Math.floor(st.cursor / ROTATE_EVERY) % st.servers.length];
      const pin = toHex(parseStorageUrl(first.storageUrls[0]).pin);
      const s = g.servers.find((x) => toHex(parseStorageUrl(x.url).pin) === pin)!;
      // Move the real server to another port; the proxy takes the announced one.
      await s.proc!.stop();
      const inner = await freePort();
      await setConfig(s.node.dir, "storage", "listen", `127.0.0.1:${inner}`);
      s.proc = await startStorageServer(s.node.dir);
      proxy = await HostileProxy.start(s.node.dir, urlAt(s.url, inner), null, {
        port: s.node.port,
      });
      proxy.rule = () => ({ drip: { intervalMs: 1000 } });
      const r = await within(BOUND_MS, "refresh", node.refresh());
      assertEquals(r.state.servers.length, 4);
      assert(r.problems.some((p) => p.includes("quick check")), r.problems.join("; "));
    } finally {
      node?.close();
      await proxy?.close();
      await g.close();
    }
  },
);

Deno.test(
  "harness: a server answering with another server's certificate is refused before any byte is sent",
  opts,
  async () => {
    const g = await TestGrid.start(2);
    const proxy = await HostileProxy.start(g.servers[0].node.dir, g.servers[0].url);
    const client = new StorageClient(parseStorageUrl(proxy.url), { timeoutMs: 2000 });
    try {
      proxy.useIdentity(await identityOf(g.servers[1].node.dir));
      await assertRejects(() => client.version(), PinMismatchError);
      assertEquals(proxy.requests.length, 0, "no request (and so no swissnum) reached it");
    } finally {
      client.close();
      await proxy.close();
      await g.close();
    }
  },
);

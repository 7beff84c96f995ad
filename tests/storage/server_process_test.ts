/**
 * Real `shoal storage` processes on 127.0.0.1 with real TLS: the CLI, the
 * server lifecycle (signals), concurrency, crash safety under SIGKILL, and
 * lease expiry with garbage collection.
 *
 * Requests go through Deno's fetch with the node's own certificate as the
 * only trusted CA and HTTP/1.1 — an independent client, so these tests check
 * the server against the protocol document rather than against our client.
 */
import assert from "node:assert/strict";
import { base32Decode, base32Encode, decodeCbor, encodeCbor } from "../../lib/codec/mod.ts";
import { slotProof, slotSi } from "./slot_helpers.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  HEADERS,
  parseStorageUrl,
  StorageClient,
  StorageError,
} from "../../lib/storage/mod.ts";
import { loadStorageNode } from "../../lib/roles/storage/mod.ts";
import {
  createStorageNode,
  freePort,
  runShoal,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";

const b32 = base32Encode;
const secret = (n: number) => new Uint8Array(32).fill(n);
// Test slots: storage indexes derived from verification keys; TestClient signs creations.
const si = (n: number) => slotSi(n);
const enc = (s: string) => new TextEncoder().encode(s);

/** A minimal protocol client over fetch (HTTP/1.1, the node's certificate as CA). */
class TestClient {
  #client: Deno.HttpClient;
  constructor(
    readonly base: string,
    readonly auth: string,
    certPem: string,
    readonly serverId: Uint8Array,
  ) {
    this.#client = Deno.createHttpClient({ caCerts: [certPem], http2: false, http1: true });
  }
  static async forNode(dir: string, address: string): Promise<TestClient> {
    const n = await loadStorageNode(dir);
    return new TestClient(
      `https://${address}${API_PREFIX}`,
      `${AUTH_SCHEME} ${b32(n.swissnum)}`,
      n.certPem,
      n.pin,
    );
  }
  async request(
    method: string,
    path: string,
    opts: {
      headers?: Record<string, string>;
      body?: Uint8Array | ReadableStream<Uint8Array>;
      auth?: string;
    } = {},
  ): Promise<{ status: number; body: Uint8Array }> {
    const r = await fetch(`${this.base}/${path}`, {
      method,
      client: this.#client,
      headers: { authorization: opts.auth ?? this.auth, ...opts.headers },
      body: opts.body as BodyInit | undefined,
    });
    return { status: r.status, body: new Uint8Array(await r.arrayBuffer()) };
  }
  async cbor(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const we = headers[HEADERS.writeEnabler];
    if (path.endsWith("/read-test-write") && typeof body === "object" && we !== undefined) {
      // A write that may create its slot carries the creation proof.
      const slot = base32Decode(path.split("/")[1]);
      body = { ...body, createSlot: await slotProof(slot, this.serverId, base32Decode(we)) };
    }
    const r = await this.request(method, path, {
      headers: { "content-type": "application/cbor", ...headers },
      body: body === undefined ? undefined : encodeCbor(body),
    });
    return { status: r.status, value: r.body.length ? decodeCbor(r.body) : null };
  }
  #closed = false;
  close() {
    if (!this.#closed) this.#client.close();
    this.#closed = true;
  }
}

const leaseHeaders = (renew = 2, cancel = 3) => ({
  [HEADERS.leaseRenewSecret]: b32(secret(renew)),
  [HEADERS.leaseCancelSecret]: b32(secret(cancel)),
});

async function withNode(
  fn: (n: { dir: string; server: StorageProcess; client: TestClient }) => Promise<void>,
  storageConfig?: Record<string, string | number>,
) {
  const node = await createStorageNode({ nickname: "t", storageConfig });
  const server = await startStorageServer(node.dir);
  const client = await TestClient.forNode(node.dir, server.address);
  try {
    await fn({ dir: node.dir, server, client });
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
}

Deno.test("storage create: files, modes, refusal to overwrite, usage errors", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "shoal-cli-" });
  try {
    const dir = `${tmp}/n1`;
    let r = await runShoal([
      "storage",
      "create",
      "--dir",
      dir,
      "--listen",
      "127.0.0.1:7001",
      "--location",
      "127.0.0.1:7002",
      "--location",
      "[::1]:7003",
      "--nickname",
      "alpha",
      "--reserved-space",
      "10G",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /created storage node/);
    const mode = async (p: string) => (await Deno.stat(`${dir}/${p}`)).mode! & 0o777;
    assert.equal(await mode("private/tls-key.pem"), 0o600);
    assert.equal(await mode("private/swissnum"), 0o600);
    assert.equal(await mode("private"), 0o700);
    const swiss = (await Deno.readTextFile(`${dir}/private/swissnum`)).trim();
    assert.match(swiss, /^[a-z2-7]{52}$/);
    assert.ok(!r.stderr.includes(swiss));
    const toml = await Deno.readTextFile(`${dir}/shoal.toml`);
    assert.match(toml, /^# /m);
    assert.match(toml, /nickname = "alpha"/);
    assert.match(toml, /locations = \["127.0.0.1:7002", "\[::1\]:7003"\]/);
    assert.match(toml, /reserved_space = "10G"/);
    assert.match(await Deno.readTextFile(`${dir}/tls-cert.pem`), /BEGIN CERTIFICATE/);
    const before = await Deno.readTextFile(`${dir}/private/swissnum`);

    // Refuses to overwrite; the existing secrets are untouched.
    r = await runShoal(["storage", "create", "--dir", dir, "--listen", "127.0.0.1:7001"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already holds a node/);
    assert.equal(await Deno.readTextFile(`${dir}/private/swissnum`), before);

    // url prints exactly one line: the storage URL, with every location.
    r = await runShoal(["storage", "url", "--dir", dir]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n").filter((l) => l);
    assert.equal(lines.length, 1);
    assert.ok(lines[0].includes(swiss));
    assert.ok(lines[0].includes("127.0.0.1:7002") && lines[0].includes("[::1]:7003"));

    // Usage errors: exit 2, nothing created.
    for (
      const args of [
        ["--listen", "127.0.0.1"],
        ["--listen", "127.0.0.1:70000"],
        ["--listen", "127.0.0.1:7001", "--reserved-space", "lots"],
        ["--listen", "127.0.0.1:7001", "--location", "nope"],
        ["--listen", "127.0.0.1:7001", "--bogus"],
        [],
      ]
    ) {
      r = await runShoal(["storage", "create", "--dir", `${tmp}/bad`, ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
    assert.equal(await Deno.stat(`${tmp}/bad`).then(() => true, () => false), false);

    // url / run on a directory without a node: exit 1, clear message.
    r = await runShoal(["storage", "url", "--dir", `${tmp}/none`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /holds no node/);

    // run with a bad config value: exit 1 naming the key.
    await Deno.writeTextFile(
      `${dir}/shoal.toml`,
      toml.replace(/lease_duration = .*/, 'lease_duration = "3x"'),
    );
    r = await runShoal(["storage", "run", "--dir", dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /storage\.lease_duration/);
    await Deno.writeTextFile(
      `${dir}/shoal.toml`,
      toml.replace(/listen = .*/, 'listen = "127.0.0.1"'),
    );
    r = await runShoal(["storage", "run", "--dir", dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /storage\.listen/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("storage run: serves over TLS, refuses strangers, exits 0 on SIGTERM and SIGINT", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const node = await createStorageNode();
    const server = await startStorageServer(node.dir);
    const client = await TestClient.forNode(node.dir, server.address);
    try {
      assert.equal(server.address, node.listen);
      assert.deepEqual(server.stdout, [`listening on ${node.listen}`]);
      const v = await client.cbor("GET", "version");
      assert.equal(v.status, 200);
      assert.equal((v.value as { protocol: number }).protocol, 1);
      // Wrong swissnum: refused, nothing stored.
      const r = await client.request("POST", `immutable/${b32(si(1))}`, {
        auth: `${AUTH_SCHEME} ${b32(secret(1))}`,
        headers: { [HEADERS.uploadSecret]: b32(secret(1)), ...leaseHeaders() },
        body: encodeCbor({ shareNumbers: [0], allocatedSize: 5 }),
      });
      assert.equal(r.status, 401);
      assert.deepEqual((await client.cbor("GET", `immutable/${b32(si(1))}/shares`)).value, []);
      const swiss = (await Deno.readTextFile(`${node.dir}/private/swissnum`)).trim();
      client.close();
      assert.equal(await server.stop(signal), 0);
      assert.ok(!server.stdout.join("\n").includes(swiss) && !server.stderr().includes(swiss));
    } finally {
      await server.kill();
      client.close();
      await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
    }
  }
});

Deno.test("storage run: an upload in flight at SIGTERM completes before exit", async () => {
  await withNode(async ({ client, server }) => {
    const S = b32(si(7));
    const alloc = await client.cbor("POST", `immutable/${S}`, {
      shareNumbers: [0],
      allocatedSize: 200_000,
    }, {
      [HEADERS.uploadSecret]: b32(secret(1)),
      ...leaseHeaders(),
    });
    assert.equal(alloc.status, 200);
    let sent = 0;
    let signalled = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        if (sent >= 200_000) return ctrl.close();
        if (sent >= 100_000 && !signalled) {
          signalled = true;
          // Let the server take in the request head first: only a request it has
          // begun to handle is "in flight" (one still unread may be refused).
          await new Promise((r) => setTimeout(r, 500));
          Deno.kill(server.pid, "SIGTERM");
          await new Promise((r) => setTimeout(r, 300));
        }
        ctrl.enqueue(new Uint8Array(10_000).fill(5));
        sent += 10_000;
      },
    });
    const r = await client.request("PATCH", `immutable/${S}/0`, {
      headers: {
        [HEADERS.uploadSecret]: b32(secret(1)),
        "content-range": "bytes 0-199999/*",
        "content-length": "200000",
      },
      body,
    });
    assert.equal(r.status, 201, server.stderr());
    assert.equal((await server.status).code, 0);
  });
});

Deno.test("concurrent read-test-writes from separate connections: exactly one succeeds", async () => {
  await withNode(async ({ dir, server, client }) => {
    const S = b32(si(8));
    const we = { [HEADERS.writeEnabler]: b32(secret(9)), ...leaseHeaders() };
    const init = await client.cbor("POST", `mutable/${S}/read-test-write`, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("v0") }],
        newLength: null,
      }],
      readVector: [],
    }, we);
    assert.equal((init.value as { success: boolean }).success, true);
    const clients = await Promise.all(
      Array.from({ length: 8 }, () => TestClient.forNode(dir, server.address)),
    );
    try {
      const results = await Promise.all(
        clients.map((c, i) =>
          c.cbor("POST", `mutable/${S}/read-test-write`, {
            testWriteVectors: [{
              share: 0,
              test: [{ offset: 0, size: 2, specimen: enc("v0") }],
              write: [{ offset: 0, data: enc(`c${i}`) }],
              newLength: null,
            }],
            readVector: [{ offset: 0, size: 2 }],
          }, we)
        ),
      );
      const wins = results.filter((r) => (r.value as { success: boolean }).success);
      assert.equal(wins.length, 1);
      const winner = results.findIndex((r) => (r.value as { success: boolean }).success);
      const now = await client.request("GET", `mutable/${S}/0`);
      assert.equal(new TextDecoder().decode(now.body), `c${winner}`);
      // Wrong write enabler over the network: refused, unchanged.
      const bad = await client.cbor("POST", `mutable/${S}/read-test-write`, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: enc("XX") }],
          newLength: null,
        }],
        readVector: [],
      }, { ...we, [HEADERS.writeEnabler]: b32(secret(10)) });
      assert.equal(bad.status, 403);
      assert.equal((bad.value as { error: string }).error, "bad-write-enabler");
      assert.equal(
        new TextDecoder().decode((await client.request("GET", `mutable/${S}/0`)).body),
        `c${winner}`,
      );
      // Garbage in, the server keeps serving.
      const junk = await client.request("POST", `mutable/${S}/read-test-write`, {
        headers: we,
        body: new Uint8Array([0xff, 0x00, 0x13]),
      });
      assert.equal(junk.status, 400);
      const trav = await client.request("GET", `immutable/..%2f..%2f..%2fetc%2fpasswd/0`);
      assert.equal(trav.status, 400);
      assert.equal((await client.cbor("GET", "version")).status, 200);
    } finally {
      clients.forEach((c) => c.close());
    }
  });
});

/** Self-checking mutable share content for version v: "v=<v>;" then bytes derived from v. */
function versionContent(v: number, size: number): Uint8Array {
  const head = enc(`v=${v};`);
  const out = new Uint8Array(size);
  out.set(head);
  for (let i = head.length; i < size; i++) out[i] = (v * 31 + i) & 0xff;
  return out;
}
function parseVersion(b: Uint8Array): number | null {
  const m = /^v=(\d+);/.exec(new TextDecoder().decode(b.subarray(0, 16)));
  if (!m) return null;
  const v = Number(m[1]);
  const expect = versionContent(v, b.length);
  return b.every((x, i) => x === expect[i]) ? v : null;
}
function immutableContent(n: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (n * 7 + i * 13) & 0xff;
  return out;
}

Deno.test("SIGKILL during uploads and mutable writes: shares are old or new, never torn", async () => {
  const node = await createStorageNode();
  try {
    for (let round = 0; round < 2; round++) {
      const server = await startStorageServer(node.dir);
      const client = await TestClient.forNode(node.dir, server.address);
      const acked = new Map<number, boolean>(); // immutable SI number -> acknowledged complete
      const mutableAcked = new Map<number, number>(); // slot -> highest acknowledged version
      let stop = false;
      const SIZE = 300_000;
      const uploader = async (w: number) => {
        for (let k = 0; !stop; k++) {
          const id = round * 1000 + w * 100 + k;
          const S = b32(
            new Uint8Array(16).fill(0).map((_, i) => (i < 4 ? (id >> (8 * i)) & 0xff : 0xaa)),
          );
          const data = immutableContent(id, SIZE);
          acked.set(id, false); // attempted; true once acknowledged complete
          try {
            const a = await client.cbor("POST", `immutable/${S}`, {
              shareNumbers: [0],
              allocatedSize: SIZE,
            }, {
              [HEADERS.uploadSecret]: b32(secret(w + 1)),
              ...leaseHeaders(),
            });
            if (a.status !== 200) return;
            for (let off = 0; off < SIZE; off += 100_000) {
              const r = await client.request("PATCH", `immutable/${S}/0`, {
                headers: {
                  [HEADERS.uploadSecret]: b32(secret(w + 1)),
                  "content-range": `bytes ${off}-${off + 99_999}/*`,
                },
                body: data.subarray(off, off + 100_000),
              });
              if (r.status === 201) acked.set(id, true);
              else if (r.status !== 200) return;
            }
          } catch {
            return; // server killed
          }
        }
      };
      const writer = async (slot: number) => {
        const S = b32(si(200 + slot));
        const we = { [HEADERS.writeEnabler]: b32(secret(50 + slot)), ...leaseHeaders() };
        let v = mutableAcked.get(slot) ?? 0;
        while (!stop) {
          v++;
          const size = 20_000 + ((v * 7919) % 40_000);
          try {
            const r = await client.cbor("POST", `mutable/${S}/read-test-write`, {
              testWriteVectors: [{
                share: 0,
                test: [],
                write: [{ offset: 0, data: versionContent(v, size) }],
                newLength: size,
              }],
              readVector: [],
            }, we);
            if ((r.value as { success: boolean }).success) mutableAcked.set(slot, v);
          } catch {
            return;
          }
        }
      };
      const work = Promise.all([0, 1, 2].map(uploader).concat([0, 1, 2].map(writer)));
      // Kill once writes are flowing (a loaded machine may take a while for the first),
      // in the middle of more.
      for (let t = 0; t < 100 && mutableAcked.size < 3 && !stop; t++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 200 + round * 300));
      await server.kill();
      stop = true;
      await work;
      client.close();

      // Restart and check every share.
      const again = await startStorageServer(node.dir);
      const c2 = await TestClient.forNode(node.dir, again.address);
      try {
        assert.ok(
          [...mutableAcked.values()].some((v) => v > 0),
          "some mutable writes were acknowledged",
        );
        for (const [id, complete] of acked) {
          const S = b32(
            new Uint8Array(16).fill(0).map((_, i) => (i < 4 ? (id >> (8 * i)) & 0xff : 0xaa)),
          );
          const list = (await c2.cbor("GET", `immutable/${S}/shares`)).value as number[];
          if (complete) assert.deepEqual(list, [0], `acknowledged share ${id} survives`);
          if (list.length) {
            const r = await c2.request("GET", `immutable/${S}/0`);
            assert.deepEqual(r.body, immutableContent(id, SIZE), `share ${id} is complete`);
          }
        }
        for (const [slot, v] of mutableAcked) {
          const r = await c2.request("GET", `mutable/${b32(si(200 + slot))}/0`);
          assert.equal(r.status, 200);
          const got = parseVersion(r.body);
          assert.notEqual(got, null, `slot ${slot} holds one whole version`);
          assert.ok(got! >= v, `slot ${slot}: version ${got} is at least the acknowledged ${v}`);
          mutableAcked.set(slot, got!);
        }
      } finally {
        c2.close();
        await again.kill();
      }
    }
  } finally {
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("lease expiry: garbage collection removes shares only when every lease expired", async () => {
  await withNode(async ({ client }) => {
    const A = b32(si(30));
    const B = b32(si(31));
    for (const S of [A, B]) {
      const a = await client.cbor(
        "POST",
        `immutable/${S}`,
        { shareNumbers: [0], allocatedSize: 4 },
        {
          [HEADERS.uploadSecret]: b32(secret(1)),
          ...leaseHeaders(),
        },
      );
      assert.equal(a.status, 200);
      const r = await client.request("PATCH", `immutable/${S}/0`, {
        headers: { [HEADERS.uploadSecret]: b32(secret(1)), "content-range": "bytes 0-3/*" },
        body: enc("data"),
      });
      assert.equal(r.status, 201);
    }
    const t0 = Date.now();
    const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, t0 + ms - Date.now())));
    await at(2000);
    // A second lease, with other secrets, on A only.
    const l = await client.request("PUT", `lease/${A}`, { headers: leaseHeaders(40, 41) });
    assert.equal(l.status, 204);
    await at(4500); // first leases expired (t0+3s) and collected; A's second lasts to t0+5s
    assert.deepEqual((await client.cbor("GET", `immutable/${A}/shares`)).value, [0]);
    assert.deepEqual((await client.cbor("GET", `immutable/${B}/shares`)).value, []);
    await at(7000);
    assert.deepEqual((await client.cbor("GET", `immutable/${A}/shares`)).value, []);
  }, { lease_duration: "3s", gc_interval: "1s", gc: "age" });
});

Deno.test("a second server on the same port fails with a clear message", async () => {
  const port = await freePort();
  const a = await createStorageNode({ port });
  const b = await createStorageNode({ port });
  const server = await startStorageServer(a.dir);
  try {
    const r = await runShoal(["storage", "run", "--dir", b.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already in use/);
  } finally {
    await server.kill();
    await Deno.remove(a.dir.replace(/\/node$/, ""), { recursive: true });
    await Deno.remove(b.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("StorageClient round trip against a real server process", async () => {
  const node = await createStorageNode();
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url));
  try {
    assert.deepEqual(client.serverId, (await loadStorageNode(node.dir)).pin);
    const v = await client.version();
    assert.equal(v.protocol, 1);
    const S = si(60);
    const up = { upload: secret(1), leaseRenew: secret(2), leaseCancel: secret(3) };
    assert.deepEqual(await client.allocate(S, up, { shareNumbers: [0, 1], allocatedSize: 6 }), {
      alreadyHave: [],
      allocated: [0, 1],
    });
    assert.deepEqual(await client.upload(S, 0, secret(1), 3, enc("def")), {
      required: [{ begin: 0, end: 3 }],
    });
    assert.deepEqual(await client.upload(S, 0, secret(1), 0, enc("abc")), { required: [] });
    await client.abortUpload(S, 1, secret(1));
    assert.deepEqual(await client.listImmutable(S), [0]);
    assert.equal(new TextDecoder().decode(await client.readImmutable(S, 0)), "abcdef");
    assert.equal(new TextDecoder().decode(await client.readImmutable(S, 0, 2, 3)), "cde");
    await client.reportCorruption("immutable", S, 0, "test report");

    const M = si(61);
    const w = { writeEnabler: secret(9), leaseRenew: secret(2), leaseCancel: secret(3) };
    const first = await client.readTestWrite(M, {
      ...w,
      slotProof: await slotProof(M, client.serverId, w.writeEnabler),
    }, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("hello") }],
        newLength: null,
      }],
      readVector: [],
    });
    assert.equal(first.success, true);
    const second = await client.readTestWrite(M, w, {
      testWriteVectors: [{
        share: 0,
        test: [{ offset: 0, size: 5, specimen: enc("hello") }],
        write: [{ offset: 0, data: enc("J") }],
        newLength: null,
      }],
      readVector: [{ offset: 0, size: 5 }],
    });
    assert.deepEqual(second, { success: true, reads: [{ share: 0, data: [enc("hello")] }] });
    await assert.rejects(
      client.readTestWrite(M, { ...w, writeEnabler: secret(10) }, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: enc("X") }],
          newLength: null,
        }],
        readVector: [],
      }),
      (e: unknown) =>
        e instanceof StorageError && e.status === 403 && e.code === "bad-write-enabler",
    );
    assert.deepEqual(await client.listMutable(M), [0]);
    assert.equal(new TextDecoder().decode(await client.readMutable(M, 0)), "Jello");
    const batch = await client.batchRead({
      slots: [{ storageIndex: M, ranges: [{ offset: 1, size: null }] }],
    });
    assert.deepEqual(batch.slots[0].shares, [{ share: 0, data: [enc("ello")] }]);
    await client.renewLease(M, { renew: secret(20), cancel: secret(21) });
    await assert.rejects(
      client.renewLease(si(62), { renew: secret(20), cancel: secret(21) }),
      (e: unknown) => e instanceof StorageError && e.status === 404,
    );
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

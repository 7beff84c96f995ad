/**
 * The web gateway through real HTTP: `shoal client run` on a joined grid of
 * real storage processes, talked to with fetch on 127.0.0.1.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startGatewayGrid, waitFor } from "./web_helpers.ts";

function randomData(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

async function body(r: Response): Promise<Uint8Array> {
  return new Uint8Array(await r.arrayBuffer());
}

Deno.test("web gateway: access token, cross-site refusal, files by cap and alias, Range", async (t) => {
  const gg = await startGatewayGrid();
  const { base, token } = gg;
  const auth = { authorization: `Bearer ${token}` };
  const wrong = { authorization: `Bearer ${token.slice(1)}x` };
  try {
    await t.step("the token file is private and matches the printed URL", async () => {
      const file = `${gg.g.clientDir}/private/api-token`;
      assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
      assertEquals((await Deno.readTextFile(file)).trim(), token);
      assert(token.length >= 40, "the token carries at least 200 bits");
    });

    await t.step(
      "state-changing requests and /api need the token: 401 without, 403 wrong",
      async () => {
        for (
          const [method, path] of [
            ["PUT", "/uri?format=mutable"],
            ["POST", "/uri?t=mkdir"],
            ["GET", "/api/status"],
            ["POST", "/api/shares"],
          ]
        ) {
          const no = await fetch(base + path, { method, body: method === "GET" ? undefined : "x" });
          await no.body?.cancel();
          assertEquals(no.status, 401, `${method} ${path} without a token`);
          assertEquals(no.headers.get("www-authenticate"), "Bearer");
          const bad = await fetch(base + path, {
            method,
            headers: wrong,
            body: method === "GET" ? undefined : "x",
          });
          assertEquals(bad.status, 403, `${method} ${path} with a wrong token`);
          assert((await bad.text()).includes("wrong access token"));
        }
        const ok = await fetch(`${base}/api/status`, { headers: auth });
        assertEquals(ok.status, 200);
        const s = await ok.json();
        assertEquals(s.servers.map((x: { nickname: string }) => x.nickname).sort(), [
          "s0",
          "s1",
          "s2",
          "s3",
        ]);
        assert(
          !JSON.stringify(s).includes("shoal-storage:"),
          "status never carries a storage URL (swissnum)",
        );
      },
    );

    await t.step("cross-site requests are refused even with the token", async () => {
      const cases: [Record<string, string>, string][] = [
        [{ origin: "http://evil.example" }, "Origin"],
        [{ origin: `http://127.0.0.1:${gg.port + 1}` }, "Origin"],
        [{ "sec-fetch-site": "cross-site" }, "Sec-Fetch-Site"],
        [{ "sec-fetch-site": "same-site" }, "Sec-Fetch-Site"],
      ];
      for (const [h, what] of cases) {
        const r = await fetch(`${base}/uri?format=mutable`, {
          method: "PUT",
          headers: { ...auth, ...h },
          body: "x",
        });
        assertEquals(r.status, 403, what);
        assert((await r.text()).includes("cross-site request refused"), what);
      }
      // DNS rebinding: a foreign Host is refused on every request, even reads.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: gg.port });
      await conn.write(
        new TextEncoder().encode(
          "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        ),
      );
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf);
      conn.close();
      assert(new TextDecoder().decode(buf.subarray(0, n ?? 0)).startsWith("HTTP/1.1 403"));
      // A same-origin request is accepted.
      const ok = await fetch(`${base}/uri?format=mutable`, {
        method: "PUT",
        headers: { ...auth, origin: base, "sec-fetch-site": "same-origin" },
        body: "same origin",
      });
      assertEquals(ok.status, 201);
      assert((await ok.text()).startsWith("shoal:MUT-W1:"));
    });

    await t.step(
      "the dashboard URL sets an HttpOnly SameSite=Strict cookie that authorizes",
      async () => {
        const bad = await fetch(`${base}/?token=nope`, { redirect: "manual" });
        await bad.body?.cancel();
        assertEquals(bad.status, 403);
        const r = await fetch(gg.dashboardUrl, { redirect: "manual" });
        await r.body?.cancel();
        assertEquals(r.status, 303);
        assertEquals(r.headers.get("location"), "/");
        const cookie = r.headers.get("set-cookie")!;
        assert(/HttpOnly/.test(cookie) && /SameSite=Strict/.test(cookie), cookie);
        const pair = cookie.split(";")[0];
        const s = await fetch(`${base}/api/status`, { headers: { cookie: pair } });
        await s.body?.cancel();
        assertEquals(s.status, 200);
        const page = await fetch(`${base}/`);
        assert((await page.text()).includes("<title>Shoal dashboard</title>"));
        assert(page.headers.get("content-security-policy")!.includes("default-src 'none'"));
      },
    );

    const big = randomData(700_000);
    let chk = "";
    await t.step("immutable upload and download are identical; Range gives 206", async () => {
      const up = await fetch(`${base}/uri`, { method: "PUT", headers: auth, body: big });
      const cap = (await up.text()).trim();
      assertEquals(up.status, 201, cap);
      assert(cap.startsWith("shoal:CHK-R1:"), "an immutable cap");
      chk = cap;
      const dl = await fetch(`${base}/uri/${cap}`);
      assertEquals(dl.status, 200);
      assertEquals(dl.headers.get("content-length"), String(big.length));
      assert(dl.headers.get("content-security-policy")!.includes("sandbox"), "files are sandboxed");
      assertEquals(await body(dl), big);
      const ranges: [string, number, number][] = [
        ["bytes=0-0", 0, 0],
        ["bytes=100000-299999", 100000, 299999],
        ["bytes=699990-", 699990, big.length - 1],
        ["bytes=-17", big.length - 17, big.length - 1],
        ["bytes=650000-9999999", 650000, big.length - 1],
      ];
      for (const [h, a, z] of ranges) {
        const r = await fetch(`${base}/uri/${encodeURIComponent(cap)}`, { headers: { range: h } });
        assertEquals(r.status, 206, h);
        assertEquals(r.headers.get("content-range"), `bytes ${a}-${z}/${big.length}`, h);
        assertEquals(await body(r), big.subarray(a, z + 1), h);
      }
      const past = await fetch(`${base}/uri/${cap}`, {
        headers: { range: `bytes=${big.length}-` },
      });
      await past.body?.cancel();
      assertEquals(past.status, 416);
      assertEquals(past.headers.get("content-range"), `bytes */${big.length}`);
      // Same bytes again: convergence gives the same cap.
      const again = await fetch(`${base}/uri`, { method: "PUT", headers: auth, body: big });
      assertEquals((await again.text()).trim(), cap);
      const named = await fetch(`${base}/uri/${cap}?filename=${encodeURIComponent("a b.bin")}`);
      await named.body?.cancel();
      assert(
        named.headers.get("content-disposition")!.startsWith('attachment; filename="a b.bin"'),
      );
    });

    await t.step("mutable files: upload, Range, overwrite in place", async () => {
      const data = randomData(5000);
      const up = await fetch(`${base}/uri?format=mutable`, {
        method: "PUT",
        headers: auth,
        body: data,
      });
      const cap = (await up.text()).trim();
      assertEquals(up.status, 201);
      assert(cap.startsWith("shoal:MUT-W1:"));
      assertEquals(await body(await fetch(`${base}/uri/${cap}`)), data);
      const r = await fetch(`${base}/uri/${cap}`, { headers: { range: "bytes=10-19" } });
      assertEquals(r.status, 206);
      assertEquals(await body(r), data.subarray(10, 20));
      const put = await fetch(`${base}/uri/${cap}`, {
        method: "PUT",
        headers: auth,
        body: "new contents",
      });
      await put.body?.cancel();
      assertEquals(put.status, 200);
      assertEquals(await (await fetch(`${base}/uri/${cap}`)).text(), "new contents");
    });

    let dircap = "";
    await t.step("mkdir, link, list (JSON), unlink by cap path", async () => {
      const mk = await fetch(`${base}/uri?t=mkdir`, { method: "POST", headers: auth });
      dircap = (await mk.text()).trim();
      assertEquals(mk.status, 201);
      assert(dircap.startsWith("shoal:DIR-W1:"));
      const sub = await fetch(`${base}/uri/${dircap}/docs?t=mkdir`, {
        method: "POST",
        headers: auth,
      });
      assertEquals(sub.status, 201, await sub.text());
      const put = await fetch(`${base}/uri/${dircap}/docs/${encodeURIComponent("notes é.txt")}`, {
        method: "PUT",
        headers: auth,
        body: "hello notes",
      });
      const fileCap = (await put.text()).trim();
      assertEquals(put.status, 201);
      const link = await fetch(`${base}/uri/${dircap}/docs/big.bin?t=uri`, {
        method: "PUT",
        headers: auth,
        body: chk,
      });
      await link.body?.cancel();
      assertEquals(link.status, 200);
      const ls = await (await fetch(`${base}/uri/${dircap}/docs`)).json();
      assertEquals(ls.kind, "directory");
      assertEquals(ls.entries.map((e: { name: string }) => e.name), ["big.bin", "notes é.txt"]);
      const bigEntry = ls.entries[0];
      assertEquals([bigEntry.kind, bigEntry.size, bigEntry.readcap], ["file", big.length, chk]);
      assertEquals(ls.entries[1].readcap, fileCap);
      assertEquals(
        await (await fetch(`${base}/uri/${dircap}/docs/${encodeURIComponent("notes é.txt")}`))
          .text(),
        "hello notes",
      );
      assertEquals(await body(await fetch(`${base}/uri/${dircap}/docs/big.bin`)), big);
      const info = await (await fetch(`${base}/uri/${dircap}/docs/big.bin?t=json`)).json();
      assertEquals(info.size, big.length);
      const del = await fetch(`${base}/uri/${dircap}/docs/big.bin`, {
        method: "DELETE",
        headers: auth,
      });
      assertEquals(del.status, 204);
      const gone = await fetch(`${base}/uri/${dircap}/docs/big.bin`);
      assertEquals(gone.status, 404);
      assert((await gone.text()).includes("no entry named 'big.bin'"));
      const del2 = await fetch(`${base}/uri/${dircap}/docs/big.bin`, {
        method: "DELETE",
        headers: auth,
      });
      assertEquals(del2.status, 404);
      await del2.body?.cancel();
      // A readcap cannot change the directory.
      const ro = ls.readcap as string;
      const nope = await fetch(`${base}/uri/${ro}/x?t=mkdir`, { method: "POST", headers: auth });
      assertEquals(nope.status, 403);
      await nope.body?.cancel();
    });

    await t.step("alias paths need the token, even to read", async () => {
      await gg.g.shoal(["client", "alias", "add", "--dir", gg.g.clientDir, "home", dircap]);
      const no = await fetch(`${base}/alias/home/docs`);
      await no.body?.cancel();
      assertEquals(no.status, 401);
      const ls = await (await fetch(`${base}/alias/home/docs`, { headers: auth })).json();
      assertEquals(ls.entries.map((e: { name: string }) => e.name), ["notes é.txt"]);
      const put = await fetch(`${base}/alias/home/docs/new.txt`, {
        method: "PUT",
        headers: auth,
        body: "via alias",
      });
      await put.body?.cancel();
      assertEquals(put.status, 201);
      assertEquals(await (await fetch(`${base}/uri/${dircap}/docs/new.txt`)).text(), "via alias");
      const missing = await fetch(`${base}/alias/nope/x`, { headers: auth });
      assertEquals(missing.status, 404);
      assert((await missing.text()).includes("no alias named 'nope'"));
    });

    await t.step("bad caps get a 400 that never echoes the cap", async () => {
      const fake = "shoal:CHK-R1:aaaaaaaaaaaaaaaaSECRETPARTaaaaa:2:4:10";
      const r = await fetch(`${base}/uri/${fake}`);
      const text = await r.text();
      assertEquals(r.status, 400);
      assert(!text.includes("SECRETPART") && !text.includes(fake), text);
    });

    await t.step("where are the shares: every server of the 2-of-4 file", async () => {
      const r = await fetch(`${base}/api/shares`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ cap: chk }),
      });
      assertEquals(r.status, 200);
      const s = await r.json();
      assertEquals(s.kind, "file");
      assertEquals(s.servers.length, 4);
      assertEquals(s.distinctShares, 4);
      assertEquals(s.servers.flatMap((x: { shares: number[] }) => x.shares).sort(), [0, 1, 2, 3]);
    });

    await t.step(
      "refresh history is recorded in memory and in the node directory (0600)",
      async () => {
        const file = `${gg.g.clientDir}/private/refresh-history.json`;
        await waitFor("the history file", async () => {
          try {
            return JSON.parse(await Deno.readTextFile(file)).entries.length > 0;
          } catch {
            return false;
          }
        });
        assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
        const s = await (await fetch(`${base}/api/status`, { headers: auth })).json();
        assert(s.history.length >= 1);
        assert(s.history.every((h: { ok: boolean }) => h.ok));
        assert(s.gsd && s.gsd.holders.length === 4, JSON.stringify(s.gsd));
      },
    );

    await t.step("no cap ever reaches the client's output", () => {
      const out = gg.client.stdout() + gg.client.stderr();
      assert(!out.includes("shoal:"), out);
    });

    await t.step("SIGTERM stops the gateway cleanly", async () => {
      assertEquals(await gg.client.stop(), 0);
      const gone = await fetch(`${base}/`).then(() => false, () => true);
      assert(gone, "the gateway no longer answers");
    });
  } finally {
    await gg.close();
  }
});

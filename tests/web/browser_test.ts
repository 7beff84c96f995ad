/**
 * The file browser (/browser) in Debian's Chromium driven by playwright-core,
 * on a real grid: aliases, breadcrumbs into a directory, upload with progress
 * to 100 %, new folder, rename, delete (confirmed), share a readcap, open a
 * pasted readcap read-only, hostile names shown as text, phone width.
 */
import { Buffer } from "node:buffer";
import type { Browser } from "playwright-core";
import { assert, assertEquals } from "../helpers/assert.ts";
import { launchChromium } from "../helpers/chromium.ts";
import { startGatewayGrid } from "./web_helpers.ts";

const HOSTILE = `<img src=x onerror="document.title='owned'">.txt`;

Deno.test("file browser in Chromium: browse, upload, mkdir, rename, delete, share, phone", async (t) => {
  const gg = await startGatewayGrid();
  let browser: Browser | null = null;
  try {
    const auth = { authorization: `Bearer ${gg.token}` };
    const mk = await fetch(`${gg.base}/uri?t=mkdir`, { method: "POST", headers: auth });
    assertEquals(mk.status, 201);
    const root = (await mk.text()).trim();
    for (
      const [method, path, body] of [
        ["POST", "/docs?t=mkdir", null],
        ["PUT", `/docs/${encodeURIComponent(HOSTILE)}`, "hostile"],
        ["PUT", "/docs/old.txt", "old"],
      ] as const
    ) {
      const r = await fetch(`${gg.base}/uri/${root}${path}`, { method, headers: auth, body });
      assert(r.ok, `${method} ${path}: ${r.status} ${await r.text()}`);
    }
    await gg.g.shoal(["client", "alias", "add", "--dir", gg.g.clientDir, "home", root]);

    // The alias list: behind the token, names only.
    const noTok = await fetch(`${gg.base}/api/aliases`);
    assertEquals(noTok.status, 401);
    await noTok.body?.cancel();
    const names = await (await fetch(`${gg.base}/api/aliases`, { headers: auth })).text();
    assertEquals(JSON.parse(names), { aliases: ["home"] });
    assert(!names.includes("shoal:"), "no cap in the alias list");
    const page0 = await fetch(`${gg.base}/browser`);
    assertEquals(page0.status, 200);
    assert((await page0.text()).includes("/browser.js"));

    browser = await launchChromium();
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const entry = (name: string) => page.locator(`#entries tbody tr[data-name="${name}"]`);

    await t.step("from the dashboard to the aliases, into home/docs", async () => {
      await page.goto(gg.dashboardUrl);
      await page.click("#files-link a");
      await entry("home").waitFor({ timeout: 15_000 });
      await entry("home").locator("a").click();
      await entry("docs").waitFor({ timeout: 15_000 });
      await entry("docs").locator("a").click();
      await entry("old.txt").waitFor({ timeout: 15_000 });
      const crumbs = await page.locator("#crumbs a").allTextContents();
      assertEquals(crumbs, ["aliases", "home", "docs"]);
      assert(new URL(page.url()).hash === "#home/docs", page.url());
      assert(!page.url().includes("shoal:"), "no cap in the address bar");
      assertEquals((await entry("old.txt").locator("td.size").textContent())!, "3 bytes");
      assertEquals((await entry("old.txt").locator("td.kind").textContent())!, "file");
      assert((await entry("old.txt").locator("td.date").textContent())!.match(/^\d{4}-/));
    });

    await t.step("a hostile name is text, not markup", async () => {
      const names = await page.locator("#entries td.name a").allTextContents();
      assert(names.includes(HOSTILE), names.join(" | "));
      assertEquals(await page.locator("#entries img").count(), 0);
      assert((await page.title()) !== "owned");
    });

    await t.step("download a file", async () => {
      const [dl] = await Promise.all([
        page.waitForEvent("download"),
        entry("old.txt").locator("a").click(),
      ]);
      assertEquals(dl.suggestedFilename(), "old.txt");
      assertEquals(await Deno.readTextFile(await dl.path()), "old");
    });

    const data = new Uint8Array(3_000_000);
    crypto.getRandomValues(data.subarray(0, 65536));
    data.fill(9, 65536);
    await t.step("upload: progress reaches 100 % and the entry appears", async () => {
      await page.setInputFiles("#upload-file", {
        name: "big.bin",
        mimeType: "application/octet-stream",
        buffer: Buffer.from(data),
      });
      await page.click("#upload-button");
      await entry("big.bin").waitFor({ timeout: 60_000 }).catch(async (e) => {
        throw new Error(`${e.message}\nstatus: ${await page.locator("#status").textContent()}`);
      });
      assertEquals(await page.locator("#progress").getAttribute("data-reported"), "100");
      assertEquals(
        await page.locator("#progress").evaluate((p) => (p as unknown as { value: number }).value),
        100,
      );
      assertEquals(await entry("big.bin").locator("td.size").textContent(), "3.0 MB");
      const got = await fetch(`${gg.base}/alias/home/docs/big.bin`, { headers: auth });
      assertEquals(new Uint8Array(await got.arrayBuffer()), data);
    });

    await t.step("new folder", async () => {
      await page.fill("#mkdir-name", "pics");
      await page.click("#mkdir-button");
      await entry("pics").waitFor({ timeout: 15_000 });
      assertEquals(await entry("pics").getAttribute("data-kind"), "directory");
      assertEquals(await entry("pics").locator(".ro").count(), 0, "a writable directory");
    });

    await t.step("rename (prompt) and delete (confirm accepted)", async () => {
      page.once("dialog", (d) => d.accept("new.txt"));
      await entry("old.txt").locator("button.act-rename").click();
      await entry("new.txt").waitFor({ timeout: 15_000 });
      await entry("old.txt").waitFor({ state: "detached", timeout: 15_000 });
      let asked = "";
      page.once("dialog", (d) => {
        asked = d.message();
        d.accept();
      });
      await entry("new.txt").locator("button.act-delete").click();
      await entry("new.txt").waitFor({ state: "detached", timeout: 15_000 });
      assert(asked.includes("Delete 'new.txt'"), asked);
      const ls = await (await fetch(`${gg.base}/alias/home/docs`, { headers: auth })).json();
      const names = ls.entries.map((e: { name: string }) => e.name).sort();
      assertEquals(names, [HOSTILE, "big.bin", "pics"].sort());
    });

    let docsReadcap = "";
    await t.step("share: the read-only cap is shown", async () => {
      await entry("big.bin").locator("button.act-share").click();
      const cap = await page.locator("#share-cap").inputValue();
      assert(cap.startsWith("shoal:CHK-R1:"), cap.slice(0, 14));
      await page.locator("#entries tr.self button.act-share").click();
      docsReadcap = await page.locator("#share-cap").inputValue();
      assert(docsReadcap.startsWith("shoal:DIR-R1:"), docsReadcap.slice(0, 14));
    });

    await t.step("open a pasted readcap: read-only, no write actions", async () => {
      await page.fill("#open-cap", docsReadcap);
      await page.click("#open-form button");
      await page.locator("#ro-mark").waitFor({ state: "visible", timeout: 15_000 });
      await entry("big.bin").waitFor();
      assertEquals(await page.locator("#entries button.act-delete").count(), 0);
      assert(await page.locator("#actions").isHidden());
      assert(!page.url().includes("shoal:"), "the cap stays out of the address bar");
      assertEquals(await entry("pics").locator(".ro").textContent(), "read-only");
    });

    await t.step("phone width: no sideways scroll at 375 px", async () => {
      await page.locator("#crumbs a", { hasText: "aliases" }).click();
      await entry("home").locator("a").click();
      await entry("docs").locator("a").click();
      await entry("pics").waitFor({ timeout: 15_000 });
      await page.setViewportSize({ width: 375, height: 740 });
      const overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert(Number(overflow) <= 1, `no horizontal page scroll at 375 px (overflow ${overflow})`);
    });
  } finally {
    await browser?.close();
    await gg.close();
  }
});

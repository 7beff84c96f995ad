/**
 * The dashboard in Debian's Chromium driven by playwright-core: every server
 * listed, a server going down and a removal shown without reload, a file
 * uploaded through the page downloads identical, and the page without the
 * token is refused. Screenshots go to a temp dir, never the repo.
 */
import { Buffer } from "node:buffer";
import type { Browser } from "playwright-core";
import { assert, assertEquals } from "../helpers/assert.ts";
import { launchChromium } from "../helpers/chromium.ts";
import { startGatewayGrid } from "./web_helpers.ts";

Deno.test("dashboard in Chromium: servers, a server down, a removal, upload/download", async (t) => {
  const gg = await startGatewayGrid();
  const shots = await Deno.makeTempDir({ prefix: "shoal-dashboard-shots-" });
  let browser: Browser | null = null;
  try {
    browser = await launchChromium();
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const rows = page.locator("#servers tbody tr");
    const row = (nick: string) => page.locator(`#servers tbody tr[data-nickname="${nick}"]`);

    await t.step("without the token the page says so and shows no data", async () => {
      await page.goto(gg.base + "/");
      await page.locator("#banner").filter({ hasText: "Not authorized" }).waitFor({
        timeout: 10_000,
      });
      assertEquals(await rows.count(), 0);
    });

    await t.step("the printed URL opens the dashboard, listing every server", async () => {
      await page.goto(gg.dashboardUrl);
      assertEquals(new URL(page.url()).search, "", "the token leaves the address bar");
      await page.waitForFunction(
        "document.querySelectorAll('#servers tbody tr').length === 4",
        null,
        {
          timeout: 15_000,
        },
      );
      for (const s of ["s0", "s1", "s2", "s3"]) {
        await row(s).locator("td.reachable.up").waitFor({ timeout: 15_000 });
      }
      assert((await page.locator("#gsd-seqnum").textContent())!.match(/^\d+$/));
      await page.waitForFunction(
        "document.getElementById('gsd-holders').textContent.split(', ').length === 4",
        null,
        { timeout: 15_000 },
      );
      await page.screenshot({ path: `${shots}/1-all-servers.png`, fullPage: true });
    });

    await t.step("a file uploaded through the page downloads identical", async () => {
      const data = new Uint8Array(300_000);
      crypto.getRandomValues(data.subarray(0, 65536));
      crypto.getRandomValues(data.subarray(65536, 131072));
      data.fill(7, 131072);
      await page.setInputFiles("#upload-file", {
        name: "upload.bin",
        mimeType: "application/octet-stream",
        buffer: Buffer.from(data),
      });
      await page.click("#upload-button");
      await page.locator("#upload-result").waitFor({ state: "visible", timeout: 30_000 }).catch(
        async (e) => {
          throw new Error(
            `${e.message}\nupload status: ${await page.locator("#upload-status").textContent()}`,
          );
        },
      );
      const cap = (await page.locator("#upload-cap").textContent())!.trim();
      assert(cap.startsWith("shoal:CHK-R1:"), `an immutable cap, got ${cap.slice(0, 13)}`);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click("#upload-link"),
      ]);
      assertEquals(download.suggestedFilename(), "upload.bin");
      const path = await download.path();
      assertEquals(new Uint8Array(await Deno.readFile(path)), data);

      // Where are its shares: the page asks every (remaining) server.
      await page.fill("#shares-cap", cap);
      await page.click("#shares-form button");
      await page.locator("#shares-status").filter({ hasText: "distinct share" }).waitFor({
        timeout: 10_000,
      });
      const found = await page.locator("#shares tbody td.shares").allTextContents();
      const shares = found.flatMap((t) => t.split(", ").map(Number)).sort();
      assert(shares.length >= 2, `at least k shares listed: ${found.join(" | ")}`);
      await page.screenshot({ path: `${shots}/2-uploaded.png`, fullPage: true });
    });

    await t.step("a server going down shows as down within a few refresh intervals", async () => {
      const started = Date.now();
      await gg.g.servers[3].proc!.stop();
      gg.g.servers[3].proc = null;
      await row("s3").locator("td.reachable.down").waitFor({ timeout: 10_000 });
      assert(Date.now() - started < 10_000);
      await row("s0").locator("td.reachable.up").waitFor();
      await page.screenshot({ path: `${shots}/3-server-down.png`, fullPage: true });
    });

    await t.step("a removal disappears from the list within a few refresh intervals", async () => {
      await gg.g.shoal(["operator", "remove-announcement", "--dir", gg.g.opDir, "s2"]);
      await row("s2").waitFor({ state: "detached", timeout: 15_000 });
      await page.waitForFunction("document.getElementById('server-count').textContent === '3'");
      await page.locator("#history tbody").filter({ hasText: "removed s2" }).waitFor({
        timeout: 10_000,
      });
      await page.screenshot({ path: `${shots}/4-removed.png`, fullPage: true });
    });

    await t.step("phone width: the page fits, the servers table scrolls inside", async () => {
      await page.setViewportSize({ width: 375, height: 740 });
      await page.locator("#health.warning").waitFor({ timeout: 15_000 });
      const overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert(Number(overflow) <= 1, `no horizontal page scroll at 375 px (overflow ${overflow})`);
      await page.screenshot({ path: `${shots}/5-phone.png`, fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    await t.step("every server down: the banner says so, with the fix", async () => {
      for (const s of gg.g.servers) {
        await s.proc?.stop();
        s.proc = null;
      }
      await page.locator("#health.error").filter({
        hasText: "no server reachable: start them or check the network",
      }).waitFor({ timeout: 20_000 });
      assert(!(await page.locator("#problems-section").isHidden()));
      const fixes = await page.locator("#problems li .fix").allTextContents();
      assert(fixes.some((f) => f.includes("shoal storage run")), fixes.join(" | "));
      await page.screenshot({ path: `${shots}/6-all-down.png`, fullPage: true });
    });

    await t.step("screenshots stayed out of the repository", async () => {
      const files = [...Deno.readDirSync(shots)].map((e) => e.name).sort();
      assertEquals(files, [
        "1-all-servers.png",
        "2-uploaded.png",
        "3-server-down.png",
        "4-removed.png",
        "5-phone.png",
        "6-all-down.png",
      ]);
      for (const f of files) assert((await Deno.stat(`${shots}/${f}`)).size > 1000);
    });
  } finally {
    await browser?.close();
    await gg.close();
    await Deno.remove(shots, { recursive: true }).catch(() => {});
  }
});

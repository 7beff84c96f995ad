/**
 * Regenerate the dashboard screenshots in docs/images/ (used by README.md and
 * docs/web-api.md): a real 4-server grid on loopback, `shoal client run`, and
 * Debian's Chromium through playwright-core.
 *
 *   deno run -A scripts/screenshots.ts
 *
 * States: every server reachable; the file browser; one server down;
 * phone width; every server down. PNGs at device scale 1, viewport 1100 px wide, to keep them
 * small.
 */
import { launchChromium } from "../tests/helpers/chromium.ts";
import { startGatewayGrid } from "../tests/web/web_helpers.ts";

const OUT = new URL("../docs/images/", import.meta.url).pathname;

await Deno.mkdir(OUT, { recursive: true });
const gg = await startGatewayGrid({ servers: 4 });
const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  await page.goto(gg.dashboardUrl);
  await page.locator("#health.ok").filter({ hasText: "4 of 4 servers reachable" }).waitFor({
    timeout: 30_000,
  });
  await page.waitForFunction(
    "[...document.querySelectorAll('#servers td.space')].every((td) => td.textContent !== '-')",
    null,
    { timeout: 15_000 },
  );
  const shot = async (name: string) => {
    await page.screenshot({ path: `${OUT}${name}.png`, fullPage: true });
    console.log(`wrote docs/images/${name}.png`);
  };
  await shot("dashboard-ok");

  // The file browser, on a small tree under the alias "home".
  const auth = { authorization: `Bearer ${gg.token}` };
  const put = async (method: string, path: string, body: string | null) => {
    const r = await fetch(`${gg.base}${path}`, { method, headers: auth, body });
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
    return (await r.text()).trim();
  };
  const home = await put("POST", "/uri?t=mkdir", null);
  await put("POST", `/uri/${home}/photos?t=mkdir`, null);
  await put("PUT", `/uri/${home}/notes.txt`, "shopping: milk, eggs\n");
  await put("PUT", `/uri/${home}/report.pdf`, "%PDF".padEnd(180_000, "x"));
  const shared = await put("PUT", `/uri?format=immutable`, "a file someone shared");
  await put("PUT", `/uri/${home}/from-alice.txt?t=uri`, shared);
  await gg.g.shoal(["client", "alias", "add", "--dir", gg.g.clientDir, "home", home]);
  await page.setViewportSize({ width: 900, height: 520 });
  await page.goto(`${gg.base}/browser#home`);
  await page.locator('#entries tr[data-name="report.pdf"]').waitFor({ timeout: 15_000 });
  await page.screenshot({ path: `${OUT}browser.png` });
  console.log("wrote docs/images/browser.png");
  await page.setViewportSize({ width: 1100, height: 700 });
  await page.goto(`${gg.base}/`);
  await page.locator("#health.ok").waitFor({ timeout: 30_000 });

  await gg.g.servers[3].proc!.stop();
  gg.g.servers[3].proc = null;
  await page.locator("#health.warning").filter({ hasText: "3 of 4 servers reachable" }).waitFor({
    timeout: 30_000,
  });
  await shot("dashboard-server-down");

  await page.setViewportSize({ width: 390, height: 800 });
  await page.waitForTimeout(300);
  await shot("dashboard-phone");
  await page.setViewportSize({ width: 1100, height: 700 });

  for (const s of gg.g.servers) {
    await s.proc?.stop();
    s.proc = null;
  }
  await page.locator("#health.error").filter({ hasText: "no server reachable" }).waitFor({
    timeout: 30_000,
  });
  await shot("dashboard-all-down");
} finally {
  await browser.close();
  await gg.close();
}

/**
 * Debian's Chromium driven by playwright-core, for the browser tests and
 * scripts/screenshots.ts: installed from Debian when missing (ensureTool), launched headless
 * with everything that would reach the network switched off.
 */
import { type Browser, chromium } from "playwright-core";
import { ensureTool } from "./debian.ts";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A headless Chromium; the caller closes it. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = await ensureTool("chromium");
  return await chromium.launch({ executablePath, args: FLAGS, headless: true });
}

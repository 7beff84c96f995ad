/**
 * Runs the test suite (`deno test -A`) with any extra arguments, passes its
 * output through, and prints `N passed, M failed` alone on the last line,
 * derived from deno's own summary. Exits with deno's exit code.
 */
/**
 * The browser tests drive Debian's Chromium (tests/web/dashboard_browser_test.ts). On a fresh
 * machine of this project's kind it is one apt-get away: install it when missing and we may.
 */
async function ensureChromium(): Promise<void> {
  const have = await Deno.stat("/usr/bin/chromium").then(() => true, () => false);
  if (have || Deno.env.get("SHOAL_SKIP_CHROMIUM_INSTALL")) return;
  const isRoot = Deno.uid?.() === 0;
  if (!isRoot) {
    console.error(
      "note: /usr/bin/chromium is missing; install Debian's chromium for the browser test",
    );
    return;
  }
  console.error("installing Debian's chromium for the browser test (apt-get)...");
  const sh = "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && " +
    "apt-get install -y -q --no-install-recommends chromium";
  const r = await new Deno.Command("bash", { args: ["-c", sh], stdout: "null", stderr: "inherit" })
    .output().catch(() => null);
  if (!r?.success) console.error("warning: could not install chromium; the browser test will fail");
}

await ensureChromium();
const args = ["test", "-A", "--parallel", ...Deno.args];
const child = new Deno.Command(Deno.execPath(), {
  args,
  stdout: "piped",
  stderr: "piped",
  env: { DENO_JOBS: Deno.env.get("DENO_JOBS") ?? "2" },
}).spawn();

const tail: string[] = [];
async function pump(
  stream: ReadableStream<Uint8Array>,
  sink: { write(p: Uint8Array): Promise<number> },
) {
  const decoder = new TextDecoder();
  let carry = "";
  for await (const chunk of stream) {
    await sink.write(chunk);
    carry += decoder.decode(chunk, { stream: true });
    const lines = carry.split("\n");
    carry = lines.pop() ?? "";
    for (const l of lines) {
      tail.push(l);
      if (tail.length > 400) tail.shift();
    }
  }
  if (carry) tail.push(carry);
}
const stdout = { write: (p: Uint8Array) => Deno.stdout.write(p) };
const stderr = { write: (p: Uint8Array) => Deno.stderr.write(p) };
await Promise.all([pump(child.stdout, stdout), pump(child.stderr, stderr)]);
const { code } = await child.status;

// deno prints e.g. "ok | 7 passed | 0 failed (60ms)" or
// "FAILED | 4 passed (2 steps) | 1 failed | 1 ignored (60ms)", with colours.
// deno-lint-ignore no-control-regex
const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");
let passed = 0;
let failed = 0;
let found = false;
for (const line of tail.map(strip)) {
  const m = /^(ok|FAILED) \| (\d+) passed.*?\| (\d+) failed/.exec(line.trim());
  if (m) {
    passed = Number(m[2]);
    failed = Number(m[3]);
    found = true;
  }
}
if (!found && code !== 0) failed = Math.max(failed, 1);
if (found && code !== 0 && failed === 0) failed = 1;
console.log(`\n${passed} passed, ${failed} failed`);
Deno.exit(code);

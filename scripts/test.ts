/**
 * Runs the test suite (`deno test -A`) with any extra arguments, passes its
 * output through, and prints `N passed, M failed` alone on the last line,
 * derived from deno's own summary. Exits with deno's exit code.
 */
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

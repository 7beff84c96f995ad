/** Running `shoal` with bytes on stdin and binary stdout, for the file-command tests. */
import { RUN_FLAGS } from "../../lib/version.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface RunResult {
  code: number;
  stdout: Uint8Array;
  /** stdout as text, trimmed. */
  text: string;
  stderr: string;
}

/** Run `shoal ARGS...` to completion, with `stdin` piped in when given. */
export async function run(args: string[], stdin?: Uint8Array): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return { code: out.code, stdout: out.stdout, text, stderr: new TextDecoder().decode(out.stderr) };
}

/** Run and require exit code 0; returns trimmed stdout. */
export async function ok(args: string[], stdin?: Uint8Array): Promise<string> {
  const r = await run(args, stdin);
  if (r.code !== 0) {
    throw new Error(`shoal ${args.slice(0, 2).join(" ")} failed (${r.code}): ${r.stderr}`);
  }
  return r.text;
}

/** Run and require exit code `code`; returns the result (stderr holds the message). */
export async function fails(args: string[], code: number, stdin?: Uint8Array): Promise<RunResult> {
  const r = await run(args, stdin);
  if (r.code !== code) {
    throw new Error(
      `shoal ${args.join(" ")}: expected exit ${code}, got ${r.code}; stderr: ${r.stderr}`,
    );
  }
  return r;
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function testBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Every file under `root` (relative path → bytes) and every directory (relative path → null). */
export async function snapshot(root: string, rel = ""): Promise<Map<string, Uint8Array | null>> {
  const out = new Map<string, Uint8Array | null>();
  for await (const e of Deno.readDir(`${root}${rel}`)) {
    const p = `${rel}/${e.name}`;
    if (e.isDirectory) {
      out.set(p, null);
      for (const [k, v] of await snapshot(root, p)) out.set(k, v);
    } else {
      out.set(p, await Deno.readFile(`${root}${p}`));
    }
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

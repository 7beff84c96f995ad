/** `shoal client serve webdav|restic` as a child process: started, its printed URL read, stopped. */
import { type ShoalProcess, startShoal } from "./process.ts";

export interface Served {
  proc: ShoalProcess;
  /** The last stdout line: the URL with credentials. */
  line: string;
  /** The URL as plain http://127.0.0.1:PORT/ (no credentials). */
  base: string;
  user: string;
  password: string;
  stop(): Promise<number>;
}

export async function startServe(args: string[], timeoutMs = 30_000): Promise<Served> {
  const proc = await startShoal(["client", "serve", ...args]);
  const end = Date.now() + timeoutMs;
  let exited = false;
  proc.status.then(() => exited = true);
  while (!/http:\/\/\S+\n/.test(proc.stdout())) {
    if (exited || Date.now() > end) {
      await proc.stop();
      throw new Error(`shoal client serve did not start: ${proc.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const line = proc.stdout().trim().split("\n").pop()!;
  const u = new URL(line.replace(/^rest:/, ""));
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = "";
  u.password = "";
  return { proc, line, base: u.href, user, password, stop: () => proc.stop() };
}

export function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${btoa(`${user}:${password}`)}` };
}

/** Run a program to completion; returns exit code and output. */
export async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

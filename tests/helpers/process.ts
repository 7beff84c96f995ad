/** Long-running `shoal` processes for tests: started, read, and stopped by their own pid. */
import { RUN_FLAGS } from "../../lib/version.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface ShoalProcess {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** SIGTERM (or `signal`) and wait for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  status: Promise<Deno.CommandStatus>;
}

export function startShoal(args: string[]): Promise<ShoalProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const pump = async (s: ReadableStream<Uint8Array>, f: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const c of s) f(dec.decode(c, { stream: true }));
  };
  const pumps = Promise.allSettled([
    pump(child.stdout, (t) => out += t),
    pump(child.stderr, (t) => err += t),
  ]);
  const status = child.status.then(async (s) => {
    await pumps;
    return s;
  });
  let exited = false;
  status.then(() => exited = true);
  return Promise.resolve({
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    status,
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (!exited) {
        try {
          Deno.kill(child.pid, signal);
        } catch { /* already gone */ }
      }
      const timer = setTimeout(() => {
        try {
          Deno.kill(child.pid, "SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      const s = await status;
      clearTimeout(timer);
      return s.code;
    },
  });
}

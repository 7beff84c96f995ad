/**
 * Real storage server processes for tests: create a node with the real CLI,
 * run `shoal storage run` as a child process, stop it by its own pid.
 * Shared by the storage, grid and discovery suites.
 */
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { RUN_FLAGS } from "../../lib/version.ts";
import { loadStorageNode, storageUrlText } from "../../lib/roles/storage/mod.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

const handedOut = new Set<number>();

/** The kernel's ephemeral port range (outgoing connections take their local ports from it). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch { /* not Linux */ }
  return [32768, 60999];
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, chosen below the ephemeral range when there
 * is room: a port the kernel hands out for `port: 0` can be taken, between this check and the
 * server's own bind, by any outgoing connection on the machine (seen once in a suite run as a
 * storage server's "already in use"); ports below the range are taken only by listeners.
 */
export async function freePort(): Promise<number> {
  const [lo] = ephemeralRange();
  const base = 10_000;
  for (let i = 0; lo - base > 1_000 && i < 50; i++) {
    const port = base + Math.floor(Math.random() * (lo - base));
    // Never the same port twice in one process (concurrent callers, each about to bind it).
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      await Promise.resolve();
      return port;
    } catch { /* in use: another */ }
  }
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await Promise.resolve();
  return port;
}

export interface ShoalResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `shoal ARGS...` (deno run -A main.ts) to completion. */
export async function runShoal(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<ShoalResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, ...args],
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export interface CreateNodeOptions {
  /** Node directory (default: a fresh temp dir + "/node"). */
  dir?: string;
  /** Listen port on 127.0.0.1 (default: freePort()). */
  port?: number;
  nickname?: string;
  reservedSpace?: string;
  locations?: string[];
  /** Keys to set in the [storage] table of shoal.toml after creation, e.g. { lease_duration: "3s" }. */
  storageConfig?: Record<string, string | number>;
}

export interface CreatedNode {
  /** The node directory; without opts.dir it is <fresh temp dir>/node (remove its parent when done). */
  dir: string;
  port: number;
  /** 127.0.0.1:PORT */
  listen: string;
}

/** Create a storage node with the real `shoal storage create`. */
export async function createStorageNode(opts: CreateNodeOptions = {}): Promise<CreatedNode> {
  const tmp = opts.dir === undefined ? await Deno.makeTempDir({ prefix: "shoal-node-" }) : null;
  const dir = opts.dir ?? `${tmp}/node`;
  const port = opts.port ?? (await freePort());
  const listen = `127.0.0.1:${port}`;
  const args = ["storage", "create", "--dir", dir, "--listen", listen];
  if (opts.nickname !== undefined) args.push("--nickname", opts.nickname);
  if (opts.reservedSpace !== undefined) args.push("--reserved-space", opts.reservedSpace);
  for (const l of opts.locations ?? []) args.push("--location", l);
  const r = await runShoal(args);
  if (r.code !== 0) {
    if (tmp) await Deno.remove(tmp, { recursive: true });
    throw new Error(`shoal storage create failed (${r.code}): ${r.stderr}`);
  }
  if (opts.storageConfig) {
    const path = `${dir}/shoal.toml`;
    const doc = parseToml(await Deno.readTextFile(path)) as Record<string, Record<string, unknown>>;
    Object.assign(doc.storage, opts.storageConfig);
    await Deno.writeTextFile(path, stringifyToml(doc));
  }
  return { dir, port, listen };
}

export interface StorageProcess {
  /** The server's storage URL (text). */
  url: string;
  pid: number;
  /** "127.0.0.1:PORT" from the "listening on" line. */
  address: string;
  /** stdout lines so far. */
  stdout: string[];
  /** stderr text so far. */
  stderr(): string;
  /** Send `signal` (default SIGTERM) and wait for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Resolves with the exit status when the process ends. */
  status: Promise<Deno.CommandStatus>;
}

/** Start `shoal storage run --dir DIR` and wait (up to timeoutMs) for its "listening on" line. */
export async function startStorageServer(
  dir: string,
  opts: { timeoutMs?: number } = {},
): Promise<StorageProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, "storage", "run", "--dir", dir],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout: string[] = [];
  let stderr = "";
  let onLine = null as ((l: string) => void) | null;
  const pumpOut = (async () => {
    const dec = new TextDecoder();
    let carry = "";
    for await (const chunk of child.stdout) {
      carry += dec.decode(chunk, { stream: true });
      const lines = carry.split("\n");
      carry = lines.pop() ?? "";
      for (const l of lines) {
        stdout.push(l);
        onLine?.(l);
      }
    }
  })();
  const pumpErr = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) stderr += dec.decode(chunk, { stream: true });
  })();
  const status = child.status.then(async (s) => {
    await Promise.allSettled([pumpOut, pumpErr]);
    return s;
  });
  let exited = false;
  status.then(() => (exited = true));
  const signalPid = (sig: Deno.Signal) => {
    if (exited) return;
    try {
      Deno.kill(child.pid, sig);
    } catch { /* already gone */ }
  };

  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      signalPid("SIGKILL");
      reject(
        new Error(`storage server did not start within ${opts.timeoutMs ?? 30000} ms: ${stderr}`),
      );
    }, opts.timeoutMs ?? 30000);
    const check = (l: string) => {
      const m = /^listening on (\S+)$/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    stdout.forEach(check);
    onLine = check;
    status.then((s) => {
      clearTimeout(timer);
      reject(new Error(`storage server exited (${s.code}) before listening: ${stderr}`));
    });
  });
  onLine = null;
  const url = storageUrlText(await loadStorageNode(dir));
  return {
    url,
    pid: child.pid,
    address,
    stdout,
    stderr: () => stderr,
    status,
    async stop(signal: Deno.Signal = "SIGTERM") {
      signalPid(signal);
      return (await status).code;
    },
    async kill() {
      signalPid("SIGKILL");
      await status;
    },
  };
}

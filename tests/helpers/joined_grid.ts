/**
 * A complete grid for tests, built through the real command line: N storage
 * server processes on loopback, an operator with a GSD linking every server's
 * announcement, and a client node that has joined (its server list recorded).
 */
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import {
  type CreatedNode,
  createStorageNode,
  runShoal,
  startStorageServer,
  type StorageProcess,
} from "./storage_process.ts";

export interface JoinedServer {
  name: string;
  node: CreatedNode;
  proc: StorageProcess | null;
  url: string;
  gsaReadcap: string;
}

export interface JoinedGrid {
  root: string;
  servers: JoinedServer[];
  opDir: string;
  clientDir: string;
  introText: string;
  /** Run a `shoal` command; throws with stderr when it exits non-zero. Returns trimmed stdout. */
  shoal(args: string[]): Promise<string>;
  close(): Promise<void>;
}

export async function shoalOk(args: string[]): Promise<string> {
  const r = await runShoal(args);
  if (r.code !== 0) {
    throw new Error(`shoal ${args.slice(0, 2).join(" ")} failed (${r.code}): ${r.stderr}`);
  }
  return r.stdout.trim();
}

/** Set `[table] key = value` in a node's shoal.toml. */
export async function setConfig(
  dir: string,
  table: string,
  key: string,
  value: unknown,
): Promise<void> {
  const path = `${dir}/shoal.toml`;
  const doc = parseToml(await Deno.readTextFile(path)) as Record<string, Record<string, unknown>>;
  doc[table] = { ...(doc[table] ?? {}), [key]: value };
  await Deno.writeTextFile(path, stringifyToml(doc));
}

export async function startJoinedGrid(
  opts: {
    servers?: number;
    refreshInterval?: number;
    shares?: { k: number; n: number; happy: number };
    /** Extra `[storage]` settings for every server, set before it first starts. */
    storage?: Record<string, string | number>;
  } = {},
): Promise<JoinedGrid> {
  const count = opts.servers ?? 4;
  const root = await Deno.makeTempDir({ prefix: "shoal-joined-" });
  const servers: JoinedServer[] = [];
  const close = async () => {
    await Promise.all(servers.map((s) => s.proc?.stop()));
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };
  try {
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      const name = `s${i}`;
      const node = await createStorageNode({ dir: `${root}/${name}`, nickname: name });
      await setConfig(node.dir, "discovery", "refresh_interval", opts.refreshInterval ?? 1);
      for (const [k, v] of Object.entries(opts.storage ?? {})) {
        await setConfig(node.dir, "storage", k, v);
      }
      const proc = await startStorageServer(node.dir);
      servers[i] = { name, node, proc, url: proc.url, gsaReadcap: "" };
    }));
    const opDir = `${root}/op`;
    await shoalOk([
      "operator",
      "create",
      "--dir",
      opDir,
      ...servers.flatMap((s) => ["--storage", s.url]),
    ]);
    const text0 = await shoalOk(["operator", "get-introduction-text", "--dir", opDir]);
    for (const s of servers) {
      s.gsaReadcap = await shoalOk([
        "storage",
        "join",
        "--dir",
        s.node.dir,
        "--introducer-v3",
        text0,
      ]);
      await shoalOk(["operator", "add-announcement", "--dir", opDir, s.gsaReadcap]);
    }
    const introText = await shoalOk(["operator", "get-introduction-text", "--dir", opDir]);
    const clientDir = `${root}/client`;
    await shoalOk(["client", "create-node", "--dir", clientDir, "--introducer-v3", introText]);
    if (opts.shares) {
      for (const [k, v] of Object.entries(opts.shares)) await setConfig(clientDir, "shares", k, v);
    }
    await shoalOk(["client", "servers", "--dir", clientDir, "--refresh"]);
    return { root, servers, opDir, clientDir, introText, shoal: shoalOk, close };
  } catch (e) {
    await close();
    throw e;
  }
}

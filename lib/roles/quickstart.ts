/**
 * `shoal quickstart`: a complete local grid on loopback in one process —
 * N storage servers, an operator with a grid service directory linking every
 * server's announcement, and a running client node. Running it again reuses
 * the same directory, ports and data. docs/quickstart.md.
 *
 *   D/quickstart.json      what was built (servers, ports) — not secret
 *   D/storage/sI/          storage node directories
 *   D/operator/            the operator node (holds the GSD writecap)
 *   D/client/              the client node
 */
import { join } from "node:path";
import { addAnnouncement, createOperator, introductionText, loadOperator } from "./operator/mod.ts";
import { createClientNode, loadClientNode, runClient } from "./client/mod.ts";
import {
  createStorageNode,
  loadStorageNode,
  runStorageNode,
  type StorageNode,
  storageUrlText,
} from "./storage/mod.ts";
import { joinGrid, publishAnnouncement } from "./storage/announce.ts";
import { GridNode } from "./gridnode.ts";
import { exists, readTextOrNull, writeFileAtomic } from "./nodefs.ts";

export const DEFAULT_QUICKSTART_SERVERS = 5;
/** Refresh interval (seconds) of the quickstart's servers and client: short, so changes show quickly. */
export const QUICKSTART_REFRESH = 10;

export function defaultQuickstartDir(): string {
  return join(Deno.env.get("HOME") ?? ".", ".shoal-quickstart");
}

export class QuickstartError extends Error {
  override name = "QuickstartError";
}

interface Manifest {
  version: 1;
  servers: { name: string; listen: string }[];
  created: string;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface QuickstartOptions {
  dir: string;
  servers: number;
  signal: AbortSignal;
  log: (line: string) => void;
  /** Called once the grid is up, with what a person needs to use it. */
  onReady: (info: QuickstartInfo) => void;
}

export interface QuickstartInfo {
  dir: string;
  introductionText: string;
  clientDir: string;
  servers: { nickname: string; listen: string }[];
  created: boolean;
  /** The client's dashboard (with its access token), or null when the gateway could not start. */
  dashboardUrl: string | null;
  dashboardProblem?: string;
}

/** Start one storage server; resolves once it listens, with a promise of its end. */
async function startServer(
  node: StorageNode,
  signal: AbortSignal,
  log: (l: string) => void,
): Promise<{ done: Promise<void> }> {
  let ready!: () => void;
  let failed!: (e: unknown) => void;
  const listening = new Promise<void>((res, rej) => {
    ready = res;
    failed = rej;
  });
  const done = runStorageNode(node, {
    signal,
    onListen: () => ready(),
    log: (l) => log(`[${node.config.nickname}] ${l}`),
  }).catch((e) => {
    failed(e);
    throw e;
  });
  await listening;
  return { done };
}

/** Build (first run) or reopen the grid, run it until `signal` aborts. */
export async function runQuickstart(opts: QuickstartOptions): Promise<void> {
  const { dir } = opts;
  const manifestPath = `${dir}/quickstart.json`;
  const text = await readTextOrNull(manifestPath);
  let manifest: Manifest;
  const created = text === null;
  if (text === null) {
    if (await exists(dir) && [...Deno.readDirSync(dir)].length > 0) {
      throw new QuickstartError(`${dir} exists and is not a quickstart grid; choose another --dir`);
    }
    if (!Number.isInteger(opts.servers) || opts.servers < 1 || opts.servers > 64) {
      throw new QuickstartError("--servers must be an integer from 1 to 64");
    }
    await Deno.mkdir(`${dir}/storage`, { recursive: true });
    manifest = { version: 1, servers: [], created: new Date().toISOString() };
    for (let i = 0; i < opts.servers; i++) {
      const name = `s${i + 1}`;
      const listen = `127.0.0.1:${freePort()}`;
      await createStorageNode({
        dir: `${dir}/storage/${name}`,
        listen,
        nickname: name,
        reservedSpace: "0",
      });
      await setRefresh(`${dir}/storage/${name}/shoal.toml`);
      manifest.servers.push({ name, listen });
    }
  } else {
    try {
      manifest = JSON.parse(text) as Manifest;
      if (manifest.version !== 1 || !Array.isArray(manifest.servers)) {
        throw new Error("unknown format");
      }
    } catch (e) {
      throw new QuickstartError(
        `${manifestPath} is damaged (${(e as Error).message}); remove ${dir} to start afresh`,
      );
    }
  }

  const release = await claimRunning(dir);
  try {
    await runBuilt(opts, manifest, manifestPath, created);
  } finally {
    await release();
  }
}

const PID_FILE = "quickstart.pid";

/**
 * One quickstart per directory: D/quickstart.pid names the running process. A second start
 * while it runs says so (instead of "address already in use"); a stale file is replaced.
 */
async function claimRunning(dir: string): Promise<() => Promise<void>> {
  const path = `${dir}/${PID_FILE}`;
  const other = Number((await readTextOrNull(path))?.trim());
  if (Number.isInteger(other) && other > 0 && other !== Deno.pid && await alive(other)) {
    throw new QuickstartError(
      `a quickstart grid is already running in ${dir} (process ${other}); use that one ` +
        "(its output lists commands to try), or stop it with Ctrl-C before starting it again",
    );
  }
  await writeFileAtomic(path, `${Deno.pid}\n`);
  return async () => {
    if ((await readTextOrNull(path))?.trim() === String(Deno.pid)) {
      await Deno.remove(path).catch(() => {});
    }
  };
}

async function alive(pid: number): Promise<boolean> {
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes("quickstart");
  } catch (e) {
    // No /proc (not Linux): assume it runs unless it is plainly gone.
    return !(e instanceof Deno.errors.NotFound) && Deno.build.os !== "linux";
  }
}

async function runBuilt(
  opts: QuickstartOptions,
  manifest: Manifest,
  manifestPath: string,
  created: boolean,
): Promise<void> {
  const { dir, signal, log } = opts;
  const nodes = await Promise.all(
    manifest.servers.map((s) => loadStorageNode(`${dir}/storage/${s.name}`)),
  );
  const runs: Promise<void>[] = [];
  for (const node of nodes) runs.push((await startServer(node, signal, log)).done);
  log(
    `${nodes.length} storage server(s) listening on ${
      manifest.servers.map((s) => s.listen).join(", ")
    }`,
  );

  const opDir = `${dir}/operator`;
  const clientDir = `${dir}/client`;
  if (!(await exists(`${opDir}/private/gsd-writecap`))) {
    const op = await createOperator(opDir, nodes.map(storageUrlText));
    try {
      const intro = await introductionText(op, { refresh: false });
      for (const node of nodes) {
        const readcap = await joinGrid(node.dir, intro);
        const gridNode = (await GridNode.load(node.dir))!;
        try {
          await publishAnnouncement(node, gridNode);
        } finally {
          gridNode.close();
        }
        await addAnnouncement(op, readcap);
        log(`announced ${node.config.nickname}`);
      }
    } finally {
      op.node.close();
    }
  }
  const op = await loadOperator(opDir);
  let intro: string;
  try {
    intro = await introductionText(op);
  } finally {
    op.node.close();
  }
  if (!(await exists(`${clientDir}/shoal.toml`))) {
    await createClientNode(clientDir, intro, {
      nickname: "quickstart-client",
      refreshInterval: QUICKSTART_REFRESH,
      webPort: freePort(),
      shares: quickstartShares(manifest.servers.length),
    });
  }
  await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  const client = await loadClientNode(clientDir);
  await client.grid.refresh({ fanout: client.config.fanout }).catch((e) =>
    log(`first refresh failed: ${e.message}`)
  );
  const info = {
    dir,
    introductionText: intro,
    clientDir,
    servers: manifest.servers.map((s) => ({ nickname: s.name, listen: s.listen })),
    created,
  };
  try {
    await runClient(client, signal, (l) => log(`[client] ${l}`), {
      onGateway: (g) => opts.onReady({ ...info, dashboardUrl: g.dashboardUrl }),
      onGatewayFailed: (why) =>
        opts.onReady({ ...info, dashboardUrl: null, dashboardProblem: why }),
    });
  } finally {
    client.grid.close();
  }
  await Promise.allSettled(runs);
}

/** Erasure coding that fits a grid of `servers`: n = min(10, servers), k about n/3, happy 70% of n. */
export function quickstartShares(servers: number): { k: number; n: number; happy: number } {
  const n = Math.min(10, servers);
  const k = Math.max(1, Math.min(3, Math.floor(n / 2)));
  return { k, n, happy: Math.max(k, Math.ceil(n * 0.7)) };
}

async function setRefresh(configPath: string): Promise<void> {
  const text = await Deno.readTextFile(configPath);
  await writeFileAtomic(
    configPath,
    text.replace(/^refresh_interval = .*$/m, `refresh_interval = "${QUICKSTART_REFRESH}s"`),
  );
}

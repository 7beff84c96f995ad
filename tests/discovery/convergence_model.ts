/**
 * A seeded, randomized convergence run against real processes through the CLI (issue #13):
 * commissions, removals, stops and restarts (SIGTERM and SIGKILL), address changes and
 * client restarts on a grid of storage servers, driven by a model of which servers are
 * announced. At the end every announced server is brought up, and the run waits until every
 * running client and every announced server lists exactly the model's servers (at their
 * current addresses) and every announced server holds every announced GSA, within `boundMs`.
 *
 * Used by tests/discovery/random_convergence_test.ts (a short sequence) and
 * scripts/convergence.ts (a long one). Failures name the seed: rerun with it to replay.
 */
import { setConfig, shoalOk } from "../helpers/joined_grid.ts";
import {
  createStorageNode,
  freePort,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";
import { type ShoalProcess, startShoal } from "../helpers/process.ts";
import { holds, recorded } from "./discovery_helpers.ts";

export interface ConvergenceOptions {
  seed: number;
  /** Storage servers in the pool (6–10). */
  servers: number;
  /** Random operations after the initial grid. */
  steps: number;
  /** Refresh interval of servers and clients, seconds. */
  serverInterval?: number;
  clientInterval?: number;
  clients?: number;
  /** Convergence bound after everything is up (default: documented bound plus slack). */
  boundMs?: number;
  log?: (line: string) => void;
}

export interface ConvergenceReport {
  seed: number;
  operations: string[];
  /** Milliseconds from "everything announced is up" until each check held. */
  serversHoldEveryGsaMs: number;
  serversListEveryServerMs: number;
  clientsListEveryServerMs: number;
}

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ModelServer {
  name: string;
  dir: string;
  proc: StorageProcess | null;
  url: string;
  readcap: string;
  joined: boolean;
  announced: boolean;
  removed: boolean;
}

interface ModelClient {
  dir: string;
  proc: ShoalProcess | null;
}

async function waitUntil(
  what: string,
  fn: () => Promise<boolean>,
  deadline: number,
  start: number,
): Promise<number> {
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`did not converge: ${what}`);
}

export async function runConvergence(opts: ConvergenceOptions): Promise<ConvergenceReport> {
  const rand = prng(opts.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const log = opts.log ?? (() => {});
  const serverInterval = opts.serverInterval ?? 1;
  const clientInterval = opts.clientInterval ?? 2;
  // docs/discovery.md §9: servers converge within a server interval of the last return (a
  // push), clients within one client interval; slack for a loaded 2-core machine.
  const boundMs = opts.boundMs ??
    (2 * serverInterval + 2 * clientInterval) * 1000 + 15_000;
  const root = await Deno.makeTempDir({ prefix: "shoal-random-" });
  const servers: ModelServer[] = [];
  const clients: ModelClient[] = [];
  const operations: string[] = [];
  const op = `${root}/op`;
  const note = (s: string) => {
    operations.push(s);
    log(`[seed ${opts.seed}] ${s}`);
  };
  const start = async (s: ModelServer) => {
    for (let attempt = 0;; attempt++) {
      try {
        s.proc = await startStorageServer(s.dir);
        break;
      } catch (e) {
        // Its port was free when picked (freePort) but lies in the ephemeral range, and another
        // connection on this machine took it while the server was down: the harness's doing, not
        // the product's. Move the server to a new port (an address change, as "move" does).
        if (attempt >= 3 || !/already in use/.test((e as Error).message)) throw e;
        const port = await freePort();
        await setConfig(s.dir, "storage", "listen", `127.0.0.1:${port}`);
        await setConfig(s.dir, "storage", "locations", [`127.0.0.1:${port}`]);
        note(`${s.name}'s port was taken meanwhile: moved to port ${port}`);
      }
    }
    s.url = s.proc.url;
  };
  const text = () => shoalOk(["operator", "get-introduction-text", "--dir", op]);
  const commission = async (s: ModelServer) => {
    if (!s.proc) await start(s);
    if (!s.joined) {
      s.readcap = await shoalOk([
        "storage",
        "join",
        "--dir",
        s.dir,
        "--introducer-v3",
        await text(),
      ]);
      s.joined = true;
    }
    await shoalOk(["operator", "add-announcement", "--dir", op, s.readcap]);
    s.announced = true;
  };
  const startClient = async (c: ModelClient) => {
    c.proc = await startShoal(["client", "run", "--dir", c.dir]);
  };
  try {
    const nodes = await Promise.all(
      Array.from({ length: opts.servers }, async (_, i) => {
        const node = await createStorageNode({ dir: `${root}/s${i}`, nickname: `s${i}` });
        await setConfig(node.dir, "discovery", "refresh_interval", serverInterval);
        return node;
      }),
    );
    for (const [i, node] of nodes.entries()) {
      servers.push({
        name: `s${i}`,
        dir: node.dir,
        proc: null,
        url: "",
        readcap: "",
        joined: false,
        announced: false,
        removed: false,
      });
    }
    // The initial grid: half of the servers, the first one the create-time server.
    const initial = servers.slice(0, Math.max(2, Math.floor(opts.servers / 2)));
    await start(initial[0]);
    await shoalOk(["operator", "create", "--dir", op, "--storage", initial[0].url]);
    for (const s of initial) await commission(s);
    note(`initial grid: ${initial.map((s) => s.name).join(" ")}`);
    for (let i = 0; i < (opts.clients ?? 2); i++) {
      const c = { dir: `${root}/c${i}`, proc: null };
      await shoalOk(["client", "create-node", "--dir", c.dir, "--introducer-v3", await text()]);
      await setConfig(c.dir, "client", "refresh_interval", clientInterval);
      await setConfig(c.dir, "web", "port", 0);
      await startClient(c);
      clients.push(c);
    }

    for (let step = 0; step < opts.steps; step++) {
      const announced = servers.filter((s) => s.announced);
      const upAnnounced = announced.filter((s) => s.proc);
      const fresh = servers.filter((s) => !s.announced && !s.removed);
      const choices: string[] = ["stop", "kill", "restart", "move", "client"];
      // Operator actions need a running announced server to read the GSD from.
      if (upAnnounced.length >= 1 && fresh.length) choices.push("commission", "commission");
      if (upAnnounced.length >= 2 && announced.length > 2) choices.push("remove");
      const what = pick(choices);
      if (what === "commission") {
        const s = pick(fresh);
        await commission(s);
        note(`commission ${s.name}`);
      } else if (what === "remove") {
        const s = pick(announced);
        await shoalOk(["operator", "remove-announcement", "--dir", op, s.name]);
        s.announced = false;
        s.removed = true;
        note(`remove ${s.name}`);
      } else if (what === "stop" || what === "kill") {
        // Keep one announced server up so the operator can act.
        const candidates = servers.filter((s) =>
          s.proc && (!s.announced || upAnnounced.length > 1)
        );
        if (!candidates.length) continue;
        const s = pick(candidates);
        if (what === "kill") await s.proc!.kill();
        else await s.proc!.stop();
        s.proc = null;
        note(`${what === "kill" ? "SIGKILL" : "stop"} ${s.name}`);
      } else if (what === "restart") {
        const down = servers.filter((s) => !s.proc && (s.joined || s.announced));
        if (!down.length) continue;
        const s = pick(down);
        await start(s);
        note(`restart ${s.name}`);
      } else if (what === "move") {
        const joined = servers.filter((s) => s.joined && (!s.announced || upAnnounced.length > 1));
        if (!joined.length) continue;
        const s = pick(joined);
        if (s.proc) await s.proc.stop();
        const port = await freePort();
        await setConfig(s.dir, "storage", "listen", `127.0.0.1:${port}`);
        await setConfig(s.dir, "storage", "locations", [`127.0.0.1:${port}`]);
        await start(s);
        note(`move ${s.name} to port ${port}`);
      } else if (what === "client") {
        const c = pick(clients);
        await c.proc?.stop();
        await startClient(c);
        note(`restart client ${c.dir.slice(root.length + 1)}`);
      }
      // Sometimes act before the grid settled, sometimes after.
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 1500)));
    }

    // Everything announced comes up; then every node must converge to the model.
    for (const s of servers.filter((s) => s.announced && !s.proc)) await start(s);
    note("every announced server is up");
    const t0 = Date.now();
    const deadline = t0 + boundMs;
    const want = servers.filter((s) => s.announced);
    const wantKey = want.map((s) => `${s.name}@${s.url}`).sort().join(" ");
    const listKey = async (dir: string) =>
      (await recorded(dir)).map((r) => `${r.nickname}@${r.storageUrls[0]}`).sort().join(" ");
    const urls = want.map((s) => s.url);
    const serversHoldEveryGsaMs = await waitUntil(
      "every server holds every GSA",
      async () => {
        for (const s of want) {
          for (const o of want) if (!(await holds(s.url, o.readcap, urls))) return false;
        }
        return true;
      },
      deadline,
      t0,
    );
    const serversListEveryServerMs = await waitUntil(
      "every announced server lists the model's servers",
      async () => {
        for (const s of want) if (await listKey(s.dir) !== wantKey) return false;
        return true;
      },
      deadline,
      t0,
    );
    const clientsListEveryServerMs = await waitUntil(
      "every running client lists the model's servers",
      async () => {
        for (const c of clients) if (await listKey(c.dir) !== wantKey) return false;
        return true;
      },
      deadline,
      t0,
    );
    return {
      seed: opts.seed,
      operations,
      serversHoldEveryGsaMs,
      serversListEveryServerMs,
      clientsListEveryServerMs,
    };
  } catch (e) {
    const views = [];
    for (const c of clients) {
      views.push(
        `${c.dir.slice(root.length + 1)}: ${
          (await recorded(c.dir)).map((r) => r.nickname).join(",")
        }`,
      );
    }
    for (const s of servers.filter((s) => s.joined)) {
      views.push(`${s.name}: ${(await recorded(s.dir)).map((r) => r.nickname).join(",")}`);
    }
    throw new Error(
      `convergence run with seed ${opts.seed} failed: ${(e as Error).message}\n` +
        `operations: ${operations.join("; ")}\nexpected: ${
          servers.filter((s) => s.announced).map((s) => s.name).join(",")
        }\nviews: ${
          views.join(" | ")
        }\nreplay: deno run -A scripts/convergence.ts --seed ${opts.seed} --servers ${opts.servers} --steps ${opts.steps}`,
    );
  } finally {
    for (const c of clients) await c.proc?.stop().catch(() => {});
    await Promise.all(servers.map((s) => s.proc?.stop().catch(() => {})));
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

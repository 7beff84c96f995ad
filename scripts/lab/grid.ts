/**
 * A real Shoal grid in the network lab (docs/lab.md): N storage server hosts, an operator host
 * and M client hosts, each a namespace of scripts/lab/netns.ts, every node made and run through
 * the `shoal` command line inside its host's namespace, following the lifecycle of
 * docs/discovery.md: `storage create` + `storage run` on each server host, `operator create` on
 * the operator host, `storage join` + `operator add-announcement` per server, then
 * `client create-node` + `client servers --refresh` on each client host.
 *
 * Server i lives on host `s<i>` at 198.18.0.<10+i>: `shoal storage run` listens on
 * 127.0.0.1:7001 inside the namespace and announces the location <address>:7001, where the host's
 * relay listens and forwards with the path's delay (netns.ts). The relay also serves the raw
 * baseline's TLS endpoint at <address>:7101, with the server's own certificate.
 */
import { RUN_FLAGS } from "../../lib/version.ts";
import { loadStorageNode, storageUrlText } from "../../lib/roles/storage/mod.ts";
import { setConfig } from "../../tests/helpers/joined_grid.ts";
import { Lab, type LabProcess } from "./netns.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const STORAGE_PORT = 7001;
export const BULK_PORT = 7101;

export interface LabGridOptions {
  servers?: number;
  clients?: number;
  /** One-way delay on every path, ms (round trip 2×). */
  delayMs?: number;
  /** Per-host link rate both ways, Mbit/s (null: unlimited). */
  rateMbit?: number | null;
  /** Refresh interval of servers and clients, seconds. */
  refreshInterval?: number;
  shares?: { k: number; n: number; happy: number };
  /** Extra `[storage]` settings for every server. */
  storage?: Record<string, string | number>;
  /** Print each step on stderr. */
  verbose?: boolean;
}

export interface ShoalRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface LabServer {
  index: number;
  name: string;
  host: string;
  address: string;
  dir: string;
  proc: LabProcess | null;
  gsaReadcap: string;
}

/** Set `[table] key = value` in a node's shoal.toml. */
export const setToml = setConfig;

export class LabGrid {
  readonly servers: LabServer[] = [];
  readonly clients: { host: string; address: string; dir: string }[] = [];
  opDir = "";
  introText = "";

  private constructor(readonly lab: Lab, readonly root: string, readonly opts: LabGridOptions) {}

  log(msg: string): void {
    if (this.opts.verbose) console.error(`lab: ${msg}`);
  }

  /** Build the lab and the grid; on any failure everything built so far is torn down. */
  static async start(opts: LabGridOptions = {}): Promise<LabGrid> {
    const lab = await Lab.create({ delayMs: opts.delayMs ?? 0 });
    let root = "";
    try {
      root = await Deno.makeTempDir({ prefix: "shoal-lab-" });
      const g = new LabGrid(lab, root, opts);
      await g.#build();
      return g;
    } catch (e) {
      await lab.close();
      if (root) await Deno.remove(root, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  async #build(): Promise<void> {
    const n = this.opts.servers ?? 4;
    const m = this.opts.clients ?? 1;
    const rate = this.opts.rateMbit === undefined ? null : this.opts.rateMbit;
    const rateOpt = rate ? { rateMbit: rate } : {};
    const interval = this.opts.refreshInterval ?? 2;
    const t0 = performance.now();
    await this.lab.addHost("op", "198.18.0.2", rateOpt);
    for (let j = 0; j < m; j++) {
      const address = `198.18.0.${100 + j}`;
      await this.lab.addHost(`c${j}`, address, rateOpt);
      this.clients.push({ host: `c${j}`, address, dir: `${this.root}/c${j}` });
    }
    for (let i = 0; i < n; i++) {
      const name = `s${i}`;
      const address = `198.18.0.${10 + i}`;
      await this.lab.addHost(name, address, rateOpt);
      this.servers.push({
        index: i,
        name,
        host: name,
        address,
        dir: `${this.root}/${name}`,
        proc: null,
        gsaReadcap: "",
      });
    }
    this.log(`${this.lab.hosts.size} hosts in ${(performance.now() - t0).toFixed(0)} ms`);
    await Promise.all(this.servers.map(async (s) => {
      await this.shoalOk(s.host, [
        "storage",
        "create",
        "--dir",
        s.dir,
        "--listen",
        `127.0.0.1:${STORAGE_PORT}`,
        "--location",
        `${s.address}:${STORAGE_PORT}`,
        "--nickname",
        s.name,
      ]);
      await setToml(s.dir, "discovery", "refresh_interval", interval);
      for (const [k, v] of Object.entries(this.opts.storage ?? {})) {
        await setToml(s.dir, "storage", k, v);
      }
      await this.startServer(s.index);
    }));
    this.log(`servers running after ${(performance.now() - t0).toFixed(0)} ms`);
    this.opDir = `${this.root}/op`;
    // What `shoal storage url` prints, read from the node directories (saves a process each).
    const urls = await Promise.all(
      this.servers.map(async (s) => storageUrlText(await loadStorageNode(s.dir))),
    );
    await this.shoalOk("op", [
      "operator",
      "create",
      "--dir",
      this.opDir,
      ...urls.flatMap((u) => ["--storage", u]),
    ]);
    const text0 = await this.shoalOk("op", [
      "operator",
      "get-introduction-text",
      "--dir",
      this.opDir,
    ]);
    // Joins in parallel (each writes its GSA to every server); announcements one at a time (each
    // republishes the GSD).
    await Promise.all(this.servers.map(async (s) => {
      s.gsaReadcap = await this.shoalOk(s.host, [
        "storage",
        "join",
        "--dir",
        s.dir,
        "--introducer-v3",
        text0,
      ]);
    }));
    for (const s of this.servers) {
      await this.shoalOk("op", [
        "operator",
        "add-announcement",
        "--dir",
        this.opDir,
        s.gsaReadcap,
        "--name",
        s.name,
      ]);
    }
    this.introText = await this.shoalOk("op", [
      "operator",
      "get-introduction-text",
      "--dir",
      this.opDir,
    ]);
    this.log(`grid announced after ${(performance.now() - t0).toFixed(0)} ms`);
    await Promise.all(this.clients.map(async (c) => {
      await this.shoalOk(c.host, [
        "client",
        "create-node",
        "--dir",
        c.dir,
        "--introducer-v3",
        this.introText,
        "--refresh-interval",
        String(interval),
      ]);
      if (this.opts.shares) {
        for (const [k, v] of Object.entries(this.opts.shares)) await setToml(c.dir, "shares", k, v);
      }
      await this.shoalOk(c.host, ["client", "servers", "--dir", c.dir, "--refresh"]);
    }));
    this.log(`clients joined after ${(performance.now() - t0).toFixed(0)} ms`);
  }

  /** Run `shoal ARGS` in a host's namespace, killed (SIGKILL) after `timeoutMs`. */
  async shoal(host: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<ShoalRun> {
    const t0 = performance.now();
    const p = this.lab.spawn(host, [Deno.execPath(), "run", ...RUN_FLAGS, MAIN, ...args]);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.stop("SIGKILL");
    }, opts.timeoutMs ?? 120_000);
    const s = await p.status;
    clearTimeout(timer);
    const r = {
      code: s.code,
      stdout: p.lines.join("\n"),
      stderr: p.stderr(),
      ms: performance.now() - t0,
      timedOut,
    };
    this.log(
      `${host}$ shoal ${args.slice(0, 2).join(" ")}: exit ${r.code} in ${r.ms.toFixed(0)} ms`,
    );
    return r;
  }

  /** `shoal ARGS` that must succeed; returns trimmed stdout. */
  async shoalOk(host: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.shoal(host, args, opts);
    if (r.code !== 0) {
      throw new Error(
        `${host}$ shoal ${args.slice(0, 2).join(" ")} failed (${r.code}${
          r.timedOut ? ", timed out" : ""
        }): ${r.stderr.trim().slice(-2000)}`,
      );
    }
    return r.stdout.trim();
  }

  /** (Re)start server i's relay and `shoal storage run` on its current host. */
  async startServer(i: number): Promise<void> {
    const s = this.servers[i];
    const h = this.lab.host(s.host);
    await this.lab.startRelay(
      s.host,
      [
        [STORAGE_PORT, `127.0.0.1:${STORAGE_PORT}`],
        [BULK_PORT, `127.0.0.1:${BULK_PORT}`],
      ],
      { port: BULK_PORT, cert: `${s.dir}/tls-cert.pem`, key: `${s.dir}/private/tls-key.pem` },
      h.address,
    );
    const proc = this.lab.spawn(s.host, [
      Deno.execPath(),
      "run",
      ...RUN_FLAGS,
      MAIN,
      "storage",
      "run",
      "--dir",
      s.dir,
    ]);
    await proc.waitLine(/^listening on /, 60_000);
    s.proc = proc;
  }

  /** Stop server i's `shoal storage run` (SIGTERM: a clean shutdown). */
  async stopServer(i: number): Promise<void> {
    const s = this.servers[i];
    await s.proc?.stop("SIGTERM");
    s.proc = null;
  }

  /**
   * Server i's host vanishes: its processes are killed (SIGKILL) and, with `linkDown`, its link
   * goes down first (nothing answers: a black hole); without, its kernel resets connections.
   */
  async vanish(i: number, linkDown = true): Promise<void> {
    const s = this.servers[i];
    if (linkDown) await this.lab.setLink(s.host, false);
    await s.proc?.stop("SIGKILL");
    s.proc = null;
    await this.lab.host(s.host).relay?.stop("SIGKILL");
  }

  /**
   * Move server i to a new host `host` at `address` (its old host is deleted): the node directory
   * goes along, `storage.locations` is edited to the new address, and the server restarts there,
   * as an operator moving a server to another machine does (docs/discovery.md §8).
   */
  async moveServer(i: number, host: string, address: string): Promise<void> {
    const s = this.servers[i];
    await this.stopServer(i);
    await this.lab.removeHost(s.host);
    const rate = this.opts.rateMbit ?? null;
    await this.lab.addHost(host, address, rate ? { rateMbit: rate } : {});
    await setToml(s.dir, "storage", "locations", [`${address}:${STORAGE_PORT}`]);
    s.host = host;
    s.address = address;
    await this.startServer(i);
  }

  /** Every client's view: `client servers --refresh --json`, as {petname: storage URL hosts}. */
  async clientView(j: number, refresh = true): Promise<Record<string, string[]>> {
    const c = this.clients[j];
    const out = await this.shoalOk(c.host, [
      "client",
      "servers",
      "--dir",
      c.dir,
      "--json",
      ...(refresh ? ["--refresh"] : []),
    ]);
    const list = JSON.parse(out) as { petname: string; storageUrls: string[] }[];
    return Object.fromEntries(
      list.map((e) => [
        e.petname,
        e.storageUrls.flatMap((u) => u.slice(u.lastIndexOf("@") + 1).split(";")),
      ]),
    );
  }

  async close(): Promise<void> {
    await this.lab.close();
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

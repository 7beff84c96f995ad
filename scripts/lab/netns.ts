/**
 * The network lab's hosts and links (docs/lab.md).
 *
 * Every host is a Linux network namespace named `shoallab<pid>-<host>` with one interface, `eth0`,
 * carrying an address from 198.18.0.0/15 (RFC 2544's benchmarking range; the /15 puts every host
 * on one link). Its peer, `v-<host>`, sits in the lab's bridge namespace `shoallab<pid>-br` on the
 * bridge `br0`. The root namespace gets no interface, address or route: nothing the lab does can
 * reach a real network. Bandwidth: `tc qdisc ... tbf` on both ends of a host's veth pair (its
 * uplink on `eth0`, its downlink on `v-<host>`). Latency, loss and partitions: the relay
 * (scripts/lab/relay.ts) each serving host runs in front of its listener, told each path's
 * settings. A host can also vanish outright (its link taken down) or be deleted.
 *
 * Teardown is `Lab.close()` (idempotent): it stops every process the lab started, by pid, then
 * deletes its namespaces (which deletes their veths). It runs on SIGINT/SIGTERM too, and
 * `Lab.create` first removes what a crashed earlier run left: namespaces with the prefix whose
 * owning process is gone. Labs are serialized across processes by a lock file, so two test files
 * never build labs at once on this small machine.
 */
import { RUN_FLAGS } from "../../lib/version.ts";
import { run as runToEnd } from "../../tests/helpers/serve.ts";

export const PREFIX = "shoallab";
const LOCK = "/tmp/shoal-lab.lock";
const RELAY = new URL("./relay.ts", import.meta.url).pathname;

export interface PathSettings {
  delayMs: number;
  loss: number;
  blocked: boolean;
  reject?: boolean;
}

/** Run a command to completion; throws with its stderr when it fails (unless `allowFail`). */
export async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; allowFail?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runToEnd(cmd, args, { stdin: opts.stdin });
  if (r.code !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r;
}

/** Why the lab cannot run here, or null when it can (root, and `ip netns add` works). */
export async function labUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "the network lab needs Linux network namespaces";
  if (Deno.uid?.() !== 0) return "the network lab needs root (ip netns)";
  const probe = `${PREFIX}${Deno.pid}-probe`;
  try {
    const r = await run("ip", ["netns", "add", probe], { allowFail: true });
    if (r.code !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
    const t = await run("ip", ["-n", probe, "link", "add", "p0", "type", "veth", "peer", "p1"], {
      allowFail: true,
    });
    if (t.code !== 0) return `veth pairs are not available: ${t.stderr.trim()}`;
    return null;
  } catch (e) {
    return `ip is not available: ${(e as Error).message}`;
  } finally {
    await run("ip", ["netns", "del", probe], { allowFail: true }).catch(() => {});
  }
}

/** `ip -n NS -batch -` with one command per line. */
async function ipBatch(ns: string, cmds: string[]): Promise<void> {
  await run("ip", ["-n", ns, "-batch", "-"], { stdin: cmds.join("\n") + "\n" });
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function namespaces(): Promise<string[]> {
  const r = await run("ip", ["netns", "list"], { allowFail: true });
  return r.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(PREFIX));
}

async function killNamespacePids(ns: string): Promise<void> {
  const r = await run("ip", ["netns", "pids", ns], { allowFail: true });
  for (const p of r.stdout.split("\n").map(Number).filter((n) => n > 0)) {
    try {
      Deno.kill(p, "SIGKILL");
    } catch { /* gone */ }
  }
}

/**
 * Remove what earlier lab runs left behind: namespaces named with the prefix whose owning process
 * (the pid in the name) is gone, with any process still inside them. `all`: every lab namespace,
 * whoever made it (for `deno task lab cleanup`). Returns the names removed.
 */
export async function cleanupLeftovers(all = false): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await namespaces()) {
    const pid = Number(/^shoallab(\d+)-/.exec(ns)?.[1] ?? 0);
    if (!all && pid > 0 && pid !== Deno.pid && alive(pid)) continue;
    await killNamespacePids(ns);
    await run("ip", ["netns", "del", ns], { allowFail: true });
    removed.push(ns);
  }
  return removed;
}

/** A line-oriented child process inside a namespace, stopped by its own pid. */
export class LabProcess {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  #err = "";
  #waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;

  constructor(readonly host: string, ns: string, args: string[], opts: { stdin?: boolean } = {}) {
    const child = this.child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...args],
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (opts.stdin) this.#writer = this.child.stdin.getWriter();
    const out = (async () => {
      let carry = "";
      for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) {
        carry += c;
        const ls = carry.split("\n");
        carry = ls.pop() ?? "";
        for (const l of ls) {
          this.lines.push(l);
          for (const w of [...this.#waiters]) {
            const m = w.re.exec(l);
            if (m) {
              this.#waiters.splice(this.#waiters.indexOf(w), 1);
              w.resolve(m);
            }
          }
        }
      }
    })().catch(() => {});
    const err = (async () => {
      for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#err += c;
        if (this.#err.length > 200_000) this.#err = this.#err.slice(-100_000);
      }
    })().catch(() => {});
    this.status = this.child.status.then(async (s) => {
      this.exited = true;
      await Promise.allSettled([out, err]);
      return s;
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  stderr(): string {
    return this.#err;
  }

  /** The first stdout line (already seen or to come) matching `re`, within `timeoutMs`. */
  waitLine(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    for (const l of this.lines) {
      const m = re.exec(l);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const w = {
        re,
        resolve: (m: RegExpExecArray) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(
          new Error(
            `${this.host}: no line matching ${re} within ${timeoutMs} ms; stderr: ${
              this.#err.slice(-2000)
            }`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(w);
      this.status.then((s) => {
        if (!this.#waiters.includes(w)) return;
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        clearTimeout(timer);
        reject(
          new Error(`${this.host}: exited (${s.code}) before ${re}: ${this.#err.slice(-2000)}`),
        );
      });
    });
  }

  async send(line: string): Promise<void> {
    await this.#writer!.write(new TextEncoder().encode(line + "\n"));
  }

  /** Send one control line and wait for the answer line starting with `prefix`. */
  async ask(line: string, prefix: string, timeoutMs = 10_000): Promise<string> {
    const before = this.lines.length;
    const p = new Promise<string>((resolve, reject) => {
      const start = Date.now();
      const tick = () => {
        for (let i = before; i < this.lines.length; i++) {
          if (this.lines[i].startsWith(prefix)) {
            const l = this.lines[i];
            this.lines.splice(before, i - before + 1);
            return resolve(l.slice(prefix.length));
          }
          if (this.lines[i].startsWith("error")) return reject(new Error(this.lines[i]));
        }
        if (this.exited) return reject(new Error(`${this.host}: relay exited`));
        if (Date.now() - start > timeoutMs) return reject(new Error(`${this.host}: no answer`));
        setTimeout(tick, 5);
      };
      tick();
    });
    await this.send(line);
    return await p;
  }

  /** Signal (default SIGTERM), then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 10_000): Promise<number> {
    if (!this.exited) {
      try {
        Deno.kill(this.child.pid, signal);
      } catch { /* gone */ }
    }
    const timer = setTimeout(() => {
      try {
        Deno.kill(this.child.pid, "SIGKILL");
      } catch { /* gone */ }
    }, graceMs);
    await this.#writer?.close().catch(() => {});
    const s = await this.status;
    clearTimeout(timer);
    return s.code;
  }
}

export interface Host {
  name: string;
  ns: string;
  address: string;
  rateMbit: number | null;
  relay: LabProcess | null;
  linkUp: boolean;
}

const live = new Set<Lab>();
let signalsInstalled = false;
const onSignal = (sig: Deno.Signal, code: number) => async () => {
  console.error(`lab: ${sig}: tearing down ${live.size} lab(s)`);
  await Promise.allSettled([...live].map((l) => l.close()));
  Deno.exit(code);
};
const sigint = onSignal("SIGINT", 130);
const sigterm = onSignal("SIGTERM", 143);

function installSignals(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  Deno.addSignalListener("SIGINT", sigint);
  Deno.addSignalListener("SIGTERM", sigterm);
}

function removeSignals(): void {
  if (!signalsInstalled || live.size) return;
  signalsInstalled = false;
  Deno.removeSignalListener("SIGINT", sigint);
  Deno.removeSignalListener("SIGTERM", sigterm);
}

export class Lab {
  readonly hosts = new Map<string, Host>();
  readonly processes = new Set<LabProcess>();
  /** One-way delay between two hosts (ms); `pathDelay` overrides per pair. */
  delayMs = 0;
  loss = 0;
  readonly pathDelay = new Map<string, number>();
  /** Partition groups: hosts in different groups cannot reach each other. Empty: none. */
  groups: string[][] = [];
  /** How a partition looks to senders: a black hole (default) or refused connections. */
  partitionMode: "blackhole" | "reject" = "blackhole";
  #closed = false;

  private constructor(readonly id: string, readonly bridgeNs: string, private lock: Deno.FsFile) {}

  /** Serialize with other labs on this machine, clear leftovers, create the bridge. */
  static async create(opts: { delayMs?: number; loss?: number } = {}): Promise<Lab> {
    const lock = await Deno.open(LOCK, { create: true, write: true });
    await lock.lock(true);
    const id = `${PREFIX}${Deno.pid}`;
    const lab = new Lab(id, `${id}-br`, lock);
    live.add(lab);
    installSignals();
    try {
      const gone = await cleanupLeftovers();
      if (gone.length) console.error(`lab: removed leftovers of an earlier run: ${gone.join(" ")}`);
      lab.delayMs = opts.delayMs ?? 0;
      lab.loss = opts.loss ?? 0;
      await run("ip", ["netns", "add", lab.bridgeNs]);
      await ipBatch(lab.bridgeNs, [
        "link set lo up",
        "link add br0 type bridge",
        "link set br0 up",
      ]);
      return lab;
    } catch (e) {
      await lab.close();
      throw e;
    }
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`lab: no host ${name}`);
    return h;
  }

  /** A new host: namespace, veth pair to the bridge, address, optional rate limit both ways. */
  async addHost(name: string, address: string, opts: { rateMbit?: number } = {}): Promise<Host> {
    if (!/^198\.1[89]\.\d{1,3}\.\d{1,3}$/.test(address)) {
      throw new Error(`lab: ${address} is not in 198.18.0.0/15`);
    }
    if (name.length > 12 || !/^[a-z0-9]+$/.test(name)) throw new Error(`lab: bad host ${name}`);
    const ns = `${this.id}-${name}`;
    const h: Host = {
      name,
      ns,
      address,
      rateMbit: opts.rateMbit ?? null,
      relay: null,
      linkUp: true,
    };
    this.hosts.set(name, h);
    await run("ip", ["netns", "add", ns]);
    const peer = `v-${name}`;
    await run("ip", [
      "link",
      "add",
      "eth0",
      "netns",
      ns,
      "type",
      "veth",
      "peer",
      "name",
      peer,
      "netns",
      this.bridgeNs,
    ]);
    await ipBatch(ns, ["link set lo up", `addr add ${address}/15 dev eth0`, "link set eth0 up"]);
    await ipBatch(this.bridgeNs, [`link set ${peer} master br0`, `link set ${peer} up`]);
    if (h.rateMbit) await this.setRate(name, h.rateMbit);
    return h;
  }

  /** Limit a host's link to `mbit` both ways (tbf on each end of its veth pair); null: no limit. */
  async setRate(name: string, mbit: number | null): Promise<void> {
    const h = this.host(name);
    h.rateMbit = mbit;
    const ends: [string, string][] = [[h.ns, "eth0"], [this.bridgeNs, `v-${name}`]];
    for (const [ns, dev] of ends) {
      await run("ip", ["netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], {
        allowFail: true,
      });
      if (mbit === null) continue;
      // burst: ~4 ms of traffic at least 64 kB (veth hands tbf GSO packets up to 64 kB).
      const burst = Math.max(65536, Math.round(mbit * 1e6 / 8 * 0.004));
      await run("ip", [
        "netns",
        "exec",
        ns,
        "tc",
        "qdisc",
        "add",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        `${mbit}mbit`,
        "burst",
        String(burst),
        "latency",
        "50ms",
      ]);
    }
  }

  /** Take a host's link down (it vanishes from the network; its processes keep running) or up. */
  async setLink(name: string, up: boolean): Promise<void> {
    const h = this.host(name);
    h.linkUp = up;
    await run("ip", ["-n", this.bridgeNs, "link", "set", `v-${name}`, up ? "up" : "down"]);
    await run("ip", ["-n", h.ns, "link", "set", "eth0", up ? "up" : "down"]);
  }

  /** Give a host an extra address (for address changes), or remove one. */
  async address(name: string, address: string, add: boolean): Promise<void> {
    const h = this.host(name);
    await run("ip", ["-n", h.ns, "addr", add ? "add" : "del", `${address}/15`, "dev", "eth0"]);
  }

  /** Delete a host: stop its processes, delete its namespace (and veth pair). */
  async removeHost(name: string): Promise<void> {
    const h = this.host(name);
    for (const p of [...this.processes]) {
      if (p.host === name) {
        await p.stop("SIGKILL", 2000);
        this.processes.delete(p);
      }
    }
    await killNamespacePids(h.ns);
    await run("ip", ["netns", "del", h.ns], { allowFail: true });
    this.hosts.delete(name);
  }

  /** Start `args` (argv) inside a host's namespace. */
  spawn(name: string, args: string[], opts: { stdin?: boolean } = {}): LabProcess {
    if (this.#closed) throw new Error("lab: closed");
    const p = new LabProcess(name, this.host(name).ns, args, opts);
    this.processes.add(p);
    p.status.then(() => this.processes.delete(p));
    return p;
  }

  /** `deno run` a script (with the program's V8 flags) inside a host's namespace. */
  spawnDeno(name: string, script: string, args: string[], opts: { stdin?: boolean } = {}) {
    return this.spawn(name, [Deno.execPath(), "run", ...RUN_FLAGS, script, ...args], opts);
  }

  /**
   * Start the host's relay: `forwards` are [public port, local target "127.0.0.1:PORT"]; the
   * public side listens on the host's address. `bulk`: also serve the raw-baseline TLS endpoint.
   */
  async startRelay(
    name: string,
    forwards: [number, string][],
    bulk?: { port: number; cert: string; key: string },
    address?: string,
  ): Promise<LabProcess> {
    const h = this.host(name);
    if (h.relay && !h.relay.exited) await h.relay.stop();
    const args = forwards.flatMap((
      [port, to],
    ) => ["--forward", `${address ?? h.address}:${port}=${to}`]);
    if (bulk) {
      args.push("--bulk", `127.0.0.1:${bulk.port}`, "--cert", bulk.cert, "--key", bulk.key);
    }
    // The relay is the network, not a workload: at nice -10 its timers stay on time while the
    // grid's processes (and anything else on the machine) keep the cores busy.
    const relay = this.spawn(name, [
      "nice",
      "-n",
      "-10",
      Deno.execPath(),
      "run",
      ...RUN_FLAGS,
      RELAY,
      ...args,
    ], { stdin: true });
    h.relay = relay;
    await relay.waitLine(/^ready$/, 30_000);
    await this.applyPaths(name);
    return relay;
  }

  inGroupWith(a: string, b: string): boolean {
    if (!this.groups.length || a === b) return true;
    const ga = this.groups.find((g) => g.includes(a));
    const gb = this.groups.find((g) => g.includes(b));
    // A host in no group is on every side (it is not part of the partition).
    return !ga || !gb || ga === gb;
  }

  pathSettings(a: string, b: string): PathSettings {
    const key = [a, b].sort().join("|");
    return {
      delayMs: a === b ? 0 : this.pathDelay.get(key) ?? this.delayMs,
      loss: a === b ? 0 : this.loss,
      blocked: !this.inGroupWith(a, b),
      reject: this.partitionMode === "reject",
    };
  }

  setPathDelay(a: string, b: string, ms: number): void {
    this.pathDelay.set([a, b].sort().join("|"), ms);
  }

  /** Send every relay (or just `only`'s) its paths' current settings. */
  async applyPaths(only?: string): Promise<void> {
    const tasks: Promise<unknown>[] = [];
    for (const h of this.hosts.values()) {
      if (!h.relay || h.relay.exited || (only && h.name !== only)) continue;
      const peers: Record<string, PathSettings> = {};
      for (const o of this.hosts.values()) peers[o.address] = this.pathSettings(h.name, o.name);
      // Extra addresses of this host itself (after an address change) and loopback: no delay.
      peers["127.0.0.1"] = { delayMs: 0, loss: 0, blocked: false };
      const set = {
        default: { delayMs: this.delayMs, loss: this.loss, blocked: false },
        peers,
      };
      tasks.push(h.relay.ask(JSON.stringify({ set }), "ok"));
    }
    await Promise.all(tasks);
  }

  /** Partition the hosts into `groups` (hosts named in none stay reachable from all). */
  async partition(
    groups: string[][],
    mode: "blackhole" | "reject" = this.partitionMode,
  ): Promise<void> {
    this.groups = groups;
    this.partitionMode = mode;
    await this.applyPaths();
  }

  async heal(): Promise<void> {
    this.groups = [];
    await this.applyPaths();
  }

  async setDelay(ms: number, loss = this.loss): Promise<void> {
    this.delayMs = ms;
    this.loss = loss;
    this.pathDelay.clear();
    await this.applyPaths();
  }

  /** Stop every process (by pid), delete every namespace. Safe to call twice and on failure. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.processes].map((p) => p.stop("SIGTERM", 3000)));
    const names = [...this.hosts.values()].map((h) => h.ns).concat(this.bridgeNs);
    for (const ns of names) await killNamespacePids(ns).catch(() => {});
    for (const ns of names) {
      await run("ip", ["netns", "del", ns], { allowFail: true }).catch(() => {});
    }
    this.hosts.clear();
    live.delete(this);
    removeSignals();
    try {
      await this.lock.unlock();
      this.lock.close();
    } catch { /* closed */ }
  }
}

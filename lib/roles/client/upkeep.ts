/**
 * Upkeep: what `shoal client run` does besides refreshing the server list
 * (docs/leases-and-upkeep.md). Two loops over everything this node holds —
 * every object reachable from its aliases (directories walked transitively,
 * read-only links included) and every upload recorded in
 * private/uploads.jsonl:
 *
 * - **leases**: every `renew_interval` (default a quarter of the shortest
 *   lease duration the servers announce: 31-day leases are renewed about
 *   weekly, three weeks before they would expire), renew this node's lease on
 *   every object at every server holding a share of it, spread evenly over
 *   half the interval (at most an hour) rather than in one burst, in a fresh
 *   random order each round. A renewal that fails is
 *   retried within the round and again in the next; every failure is logged
 *   and shown on the dashboard.
 * - **health**: every `check_interval` (default 1 hour), check every object
 *   with batched calls and repair what is below happiness — missing shares,
 *   shares on servers that joined since (re-spreading), mutable shares that
 *   missed a version — keeping a mutable file's version when it is unchanged
 *   (no republish, no churn: Tahoe-LAFS #1209).
 *
 * Settings, `[upkeep]` in C/shoal.toml: `enabled` (true), `check_interval`
 * (seconds, 3600), `renew_interval` (seconds; unset = a quarter of the lease
 * duration). Log lines and the dashboard never show a cap.
 */
import { parse } from "smol-toml";
import { recordedStorageUrls } from "../../discovery/mod.ts";
import type { Grid } from "../../grid/mod.ts";
import { sleep } from "../../sleep.ts";
import { readTextOrNull } from "../nodefs.ts";
import { loadAliases } from "./aliases.ts";
import { deepCheck, renewObjectLeases, serverName } from "./deepcheck.ts";
import { CLIENT_CONFIG_FILE, type ClientNode, ClientNodeError } from "./node.ts";
import { loadUploads, uploadLabel } from "./uploads.ts";
import { locateImmutables, type WalkRoot, walkTree } from "./walk.ts";

export interface UpkeepConfig {
  enabled: boolean;
  /** Seconds between health checks. */
  checkInterval: number;
  /** Seconds between lease renewal rounds; null: a quarter of the lease duration. */
  renewInterval: number | null;
}

export const DEFAULT_CHECK_INTERVAL = 3600;

export function parseUpkeepConfig(text: string, file: string): UpkeepConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ClientNodeError(`${file} is not valid TOML: ${(e as Error).message}`);
  }
  const u = (doc.upkeep ?? {}) as Record<string, unknown>;
  const enabled = u.enabled ?? true;
  if (typeof enabled !== "boolean") {
    throw new ClientNodeError(`${file}: upkeep.enabled must be true or false`);
  }
  const secs = (key: string, v: unknown): number => {
    if (typeof v !== "number" || !(v >= 0.5) || v > 365 * 86400) {
      throw new ClientNodeError(
        `${file}: upkeep.${key} must be a number of seconds from 0.5 to 31536000`,
      );
    }
    return v;
  };
  return {
    enabled,
    checkInterval: secs("check_interval", u.check_interval ?? DEFAULT_CHECK_INTERVAL),
    renewInterval: u.renew_interval === undefined ? null : secs("renew_interval", u.renew_interval),
  };
}

export async function loadUpkeepConfig(dir: string): Promise<UpkeepConfig> {
  const file = `${dir}/${CLIENT_CONFIG_FILE}`;
  return parseUpkeepConfig((await readTextOrNull(file)) ?? "", file);
}

export interface UpkeepStatus {
  enabled: boolean;
  checkInterval: number;
  /** Seconds; known once the servers announced their lease duration. */
  renewInterval: number | null;
  leaseDuration: number | null;
  /** Objects held at the last walk (aliases + recorded uploads). */
  objects: number | null;
  lastCheck: {
    at: number;
    objects: number;
    healthy: number;
    unhealthy: number;
    unrecoverable: number;
    repaired: number;
    repairFailed: number;
  } | null;
  nextCheck: number | null;
  lastRenewal:
    | { at: number; objects: number; renewed: number; failed: number; missing: number }
    | null;
  nextRenewal: number | null;
  /** Renewals that failed and have not succeeded since (path, server, error, when). */
  failures: { path: string; server: string; error: string; at: number }[];
  /** Recent decisions and failures, newest last. */
  log: { at: number; line: string }[];
}

const LOG_MEMORY = 100;
/** Longest time (seconds) one round of renewals is spread over. */
const MAX_SPREAD = 3600;
const now = () => Math.floor(Date.now() / 1000);

/** Roots of everything this node holds: its aliases, then its recorded unlinked uploads. */
export async function heldRoots(dir: string): Promise<WalkRoot[]> {
  const roots: WalkRoot[] = [...(await loadAliases(dir))].map(([name, cap]) => ({
    cap,
    path: `${name}:`,
  }));
  for (const u of await loadUploads(dir)) roots.push({ cap: u.cap, path: uploadLabel(u) });
  return roots;
}

export class Upkeep {
  readonly #node: ClientNode;
  readonly #log: (line: string) => void;
  readonly config: UpkeepConfig;
  readonly #status: UpkeepStatus;
  /** path|server -> failure */
  readonly #failures = new Map<string, UpkeepStatus["failures"][number]>();

  constructor(node: ClientNode, config: UpkeepConfig, log: (line: string) => void) {
    this.#node = node;
    this.config = config;
    this.#log = log;
    this.#status = {
      enabled: config.enabled,
      checkInterval: config.checkInterval,
      renewInterval: config.renewInterval,
      leaseDuration: null,
      objects: null,
      lastCheck: null,
      nextCheck: null,
      lastRenewal: null,
      nextRenewal: null,
      failures: [],
      log: [],
    };
  }

  /** The dashboard's view (no caps). */
  status(): UpkeepStatus {
    return {
      ...this.#status,
      failures: [...this.#failures.values()].slice(-50),
      log: this.#status.log.slice(),
    };
  }

  #say(line: string): void {
    this.#log(`upkeep: ${line}`);
    this.#status.log.push({ at: now(), line });
    if (this.#status.log.length > LOG_MEMORY) this.#status.log.shift();
  }

  /** A Grid over the servers recorded now (the refresh loop keeps them current). */
  #grid(): Grid | null {
    const urls = recordedStorageUrls(this.#node.grid.state).map((r) => r.url);
    if (urls.length === 0) return null;
    const { k, n } = this.#node.config.shares;
    return this.#node.grid.grid(urls, { k, n });
  }

  /** Run both loops until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.config.enabled) {
      this.#say("disabled ([upkeep] enabled = false): leases are not renewed, nothing is repaired");
      return;
    }
    this.#say(
      `checking health every ${this.config.checkInterval}s; renewing leases every ${
        this.config.renewInterval ?? "quarter lease duration "
      }${this.config.renewInterval ? "s" : ""}`,
    );
    await Promise.all([this.#leaseLoop(signal), this.#checkLoop(signal)]);
    this.#say(this.stopNotice());
  }

  /** What stopping means for what this node holds (said when `client run` stops). */
  stopNotice(): string {
    const r = this.#status.lastRenewal;
    const lease = this.#status.leaseDuration;
    if (!r || lease === null) {
      return "stopping before any lease renewal: objects keep the leases they had";
    }
    const until = new Date((r.at + lease) * 1000).toISOString();
    return `stopping: the leases on the ${r.objects} object(s) held last until about ${until} ` +
      `(${lease}s after the last renewal); servers that collect garbage may delete them after ` +
      "that unless 'shoal client run' runs again";
  }

  async #leaseDuration(grid: Grid): Promise<number | null> {
    const ds = await Promise.all(
      grid.servers.all().map((s) => s.storage.version().then((v) => v.leaseDuration, () => null)),
    );
    const known = ds.filter((d): d is number => typeof d === "number" && d > 0);
    return known.length ? Math.min(...known) : null;
  }

  async #leaseLoop(signal: AbortSignal): Promise<void> {
    let backoff = 1;
    while (!signal.aborted) {
      const started = Date.now();
      let every: number;
      try {
        every = await this.renewRound(signal);
        backoff = 1;
      } catch (e) {
        if (signal.aborted) break;
        // Retry soon (no servers known yet, all unreachable, ...), backing off to a quarter interval.
        const cap = (this.#status.renewInterval ?? this.config.renewInterval ?? 3600) / 4;
        every = Math.min(backoff, Math.max(1, cap));
        backoff = Math.min(backoff * 2, Math.max(1, cap));
        this.#say(
          `lease renewal round failed (retrying in ${Math.ceil(every)}s): ${(e as Error).message}`,
        );
      }
      this.#status.nextRenewal = Math.floor((started + every * 1000) / 1000);
      await sleep(Math.max(100, started + every * 1000 - Date.now()), signal);
    }
  }

  /** One round of renewals, spread over half the interval; returns the interval (seconds). */
  async renewRound(signal: AbortSignal): Promise<number> {
    const grid = this.#grid();
    if (!grid) throw new Error("no storage servers known yet");
    const lease = await this.#leaseDuration(grid);
    this.#status.leaseDuration = lease;
    const every = this.config.renewInterval ?? Math.max(1, (lease ?? 4 * 86400) / 4);
    this.#status.renewInterval = every;
    const objs = await walkTree(grid, await heldRoots(this.#node.dir), { signal });
    await locateImmutables(grid, objs);
    this.#status.objects = objs.length;
    // Spread over half the interval, at most an hour (a node restarted daily still renews
    // everything), in a fresh random order each round (no object is always last).
    const spreadMs = Math.min(every / 2, MAX_SPREAD) * 1000;
    for (let i = objs.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [objs[i], objs[j]] = [objs[j], objs[i]];
    }
    const t0 = Date.now();
    let renewed = 0;
    let missing = 0;
    const failed: typeof objs = [];
    const names = new Map(grid.servers.all().map((s) => [s, serverName(s)]));
    for (let i = 0; i < objs.length && !signal.aborted; i++) {
      const due = t0 + (spreadMs * i) / objs.length;
      if (due > Date.now()) await sleep(due - Date.now(), signal);
      const o = objs[i];
      let bad = false;
      const r = await renewObjectLeases(grid, o, (s, error) => {
        bad = true;
        this.#failures.set(`${o.path}|${names.get(s)}`, {
          path: o.path,
          server: names.get(s) ?? "?",
          error,
          at: now(),
        });
      });
      renewed += r.renewed;
      if (r.renewed + r.failed === 0) {
        missing++;
        this.#say(`${o.path}: found on no server; its lease cannot be renewed`);
      }
      if (bad) failed.push(o);
      else {for (const k of [...this.#failures.keys()]) {
          if (k.startsWith(`${o.path}|`)) this.#failures.delete(k);
        }}
    }
    // Retry what failed once within the round, after a short pause.
    let stillFailed = 0;
    if (failed.length && !signal.aborted) {
      await sleep(Math.min(5000, (every * 1000) / 10), signal);
      for (const o of failed) {
        const r = await renewObjectLeases(grid, o, (s, error) => {
          this.#say(`lease renewal of ${o.path} on ${serverName(s)} failed (will retry): ${error}`);
        });
        renewed += r.renewed;
        if (r.failed) stillFailed += r.failed;
        else {for (const k of [...this.#failures.keys()]) {
            if (k.startsWith(`${o.path}|`)) this.#failures.delete(k);
          }}
      }
    }
    this.#status.lastRenewal = {
      at: now(),
      objects: objs.length,
      renewed,
      failed: stillFailed,
      missing,
    };
    this.#say(
      `renewed ${renewed} lease(s) on ${objs.length} object(s)` +
        (stillFailed ? `; ${stillFailed} renewal(s) failed, retried next round` : "") +
        (missing ? `; ${missing} object(s) found on no server` : ""),
    );
    return every;
  }

  async #checkLoop(signal: AbortSignal): Promise<void> {
    // The first check soon after start (the refresh loop has had a moment to run).
    await sleep(Math.min(this.config.checkInterval, 5) * 1000, signal);
    let backoff = 1;
    while (!signal.aborted) {
      const started = Date.now();
      let every = this.config.checkInterval;
      try {
        await this.checkRound(signal);
        backoff = 1;
      } catch (e) {
        if (signal.aborted) break;
        every = Math.min(backoff, every);
        backoff = Math.min(backoff * 2, this.config.checkInterval);
        this.#say(
          `health check failed (retrying in ${Math.ceil(every)}s): ${(e as Error).message}`,
        );
      }
      this.#status.nextCheck = Math.floor((started + every * 1000) / 1000);
      await sleep(Math.max(100, started + every * 1000 - Date.now()), signal);
    }
  }

  /** Check everything held and repair what is not healthy. */
  async checkRound(signal: AbortSignal): Promise<void> {
    const grid = this.#grid();
    if (!grid) throw new Error("no storage servers known yet");
    const rep = await deepCheck(grid, await heldRoots(this.#node.dir), {
      happy: this.#node.config.shares.happy,
      repair: true,
      signal,
      log: (l) => this.#say(l),
    });
    const c = rep.counts;
    this.#status.objects = c.objects;
    this.#status.lastCheck = {
      at: now(),
      objects: c.objects,
      healthy: c.healthy,
      unhealthy: c.unhealthy,
      unrecoverable: c.unrecoverable,
      repaired: c.repaired,
      repairFailed: c.repairFailed,
    };
    const unreachable = rep.unreachable.map((u) => u.server).join(", ");
    if (c.repaired || c.repairFailed || c.unhealthy || c.unrecoverable || unreachable) {
      this.#say(
        `checked ${c.objects} object(s): ${c.healthy} healthy, ${c.repaired} repaired, ` +
          `${c.repairFailed} repair(s) failed, ${c.unhealthy} not healthy, ${c.unrecoverable} unrecoverable` +
          (unreachable ? `; not answering: ${unreachable}` : ""),
      );
    } else {
      this.#say(`checked ${c.objects} object(s): all healthy, nothing to do`);
    }
  }
}

/**
 * The client node directory and its daemon. docs/client-node.md.
 *
 *   C/shoal.toml                  settings (nickname, refresh interval, fanout)
 *   C/private/introduction-text   the grid's introduction text (0600)
 *   C/private/servers.json        the recorded server list and GSD freshness (0600)
 *   C/private/lease-secret        this node's lease secret (0600)
 */
import { sleep } from "../../sleep.ts";
import {
  type DiscoveryState,
  gsdFreshness,
  parseIntroductionText,
  type RecordedServer,
  recordedStorageUrls,
  type RefreshResult,
} from "../../discovery/mod.ts";
import type { Grid } from "../../grid/mod.ts";
import { type ClientGateway, startClientGateway } from "../../web/mod.ts";
import { GridNode } from "../gridnode.ts";
import { loadUpkeepConfig, Upkeep } from "./upkeep.ts";
import { probeServers } from "./probe.ts";
import {
  exists,
  loadOrCreateSecret,
  makePrivateDir,
  normalizeDir,
  readTextOrNull,
  writeFileAtomic,
} from "../nodefs.ts";
import {
  describeUnknownKey,
  keyLine,
  parseTomlText,
  tableLine,
  trackReads,
  unreadKeys,
} from "../tomlconf.ts";

export const CLIENT_CONFIG_FILE = "shoal.toml";
/** Default seconds between refreshes of the server list. */
export const DEFAULT_REFRESH_INTERVAL = 60;
export const DEFAULT_FANOUT = 2;

export class ClientNodeError extends Error {
  override name = "ClientNodeError";
}

export interface ClientConfig {
  nickname: string;
  refreshInterval: number;
  fanout: number;
  /** Erasure coding for new files: k of n shares, and servers-of-happiness for immutable uploads. */
  shares: { k: number; n: number; happy: number };
  /** Port of the web gateway on 127.0.0.1 (0: pick a free one). */
  webPort: number;
}

export const DEFAULT_SHARES = { k: 3, n: 10, happy: 7 };
export const DEFAULT_WEB_PORT = 3456;
export const CONVERGENCE_SECRET_FILE = "private/convergence-secret";

export interface ClientNode {
  dir: string;
  config: ClientConfig;
  grid: GridNode;
}

function renderConfig(c: ClientConfig): string {
  return [
    "# Shoal client node. Secrets (introduction text, server list, lease secret) live in private/.",
    "[client]",
    `nickname = ${JSON.stringify(c.nickname)}`,
    "# Seconds between refreshes of the server list while `shoal client run` runs.",
    `refresh_interval = ${c.refreshInterval}`,
    "# How many storage servers to read the grid service directory from on a full refresh.",
    `fanout = ${c.fanout}`,
    "",
    "[shares]",
    "# New files are erasure-coded into n shares, any k of which rebuild them; an immutable",
    "# upload succeeds only when its shares land on at least `happy` distinct servers.",
    `k = ${c.shares.k}`,
    `n = ${c.shares.n}`,
    `happy = ${c.shares.happy}`,
    "",
    "[web]",
    "# The web gateway and dashboard listen on 127.0.0.1 at this port while `shoal client run` runs.",
    `port = ${c.webPort}`,
    "",
  ].join("\n");
}

/**
 * Parse a client node's shoal.toml (docs/client-node.md). A syntax error names the line and
 * column; an unknown or misplaced key names the key and its line. Problems in `[shares]` or
 * `[web]` do not stop the parse: reading `config.shares` (or `config.webPort`) throws them, so
 * commands that never use that section still work.
 */
export function parseClientConfig(text: string, file: string): ClientConfig {
  const raw = parseTomlText(text, file, (m) => new ClientNodeError(m));
  const used = new Set<string>();
  const doc = trackReads(raw, used);
  const isInt = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x);
  const table = (name: string): Record<string, unknown> => {
    const t = doc[name];
    if (t === undefined) return {};
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      throw new ClientNodeError(`${file}: ${name} must be a table ([${name}])`);
    }
    return t as Record<string, unknown>;
  };
  const at = (tn: string, key: string) => {
    const line = keyLine(text, tn, key);
    return line === null ? file : `${file}:${line}`;
  };
  const c = table("client");
  const nickname = c.nickname ?? "";
  if (typeof nickname !== "string") {
    throw new ClientNodeError(`${at("client", "nickname")}: client.nickname must be text`);
  }
  const refreshInterval = c.refresh_interval ?? DEFAULT_REFRESH_INTERVAL;
  if (typeof refreshInterval !== "number" || !(refreshInterval >= 0.1) || refreshInterval > 86400) {
    throw new ClientNodeError(
      `${
        at("client", "refresh_interval")
      }: client.refresh_interval must be a number of seconds between 0.1 and 86400; found ${
        JSON.stringify(refreshInterval)
      }`,
    );
  }
  const fanout = c.fanout ?? DEFAULT_FANOUT;
  if (typeof fanout !== "number" || !Number.isInteger(fanout) || fanout < 1 || fanout > 16) {
    throw new ClientNodeError(
      `${at("client", "fanout")}: client.fanout must be an integer from 1 to 16; found ${
        JSON.stringify(fanout)
      }`,
    );
  }
  // Sections read lazily: their problem is thrown when a command uses them.
  const problems = new Map<string, string>();
  let shares = { ...DEFAULT_SHARES };
  try {
    const sh = table("shares");
    const k = sh.k ?? DEFAULT_SHARES.k;
    const n = sh.n ?? DEFAULT_SHARES.n;
    const happy = sh.happy ?? DEFAULT_SHARES.happy;
    if (
      !isInt(k) || !isInt(n) || !isInt(happy) || k < 1 || n < k || n > 256 || happy < 1 ||
      happy > n
    ) {
      const line = tableLine(text, "shares");
      problems.set(
        "shares",
        `${line === null ? file : `${file}:${line}`}: [shares] needs integers with ` +
          `1 <= k <= n <= 256 and 1 <= happy <= n; found k = ${JSON.stringify(k)}, n = ${
            JSON.stringify(n)
          }, happy = ${JSON.stringify(happy)}`,
      );
    } else shares = { k, n, happy };
  } catch (e) {
    problems.set("shares", (e as Error).message);
  }
  let webPort: number = DEFAULT_WEB_PORT;
  try {
    const web = table("web");
    const p = web.port ?? DEFAULT_WEB_PORT;
    if (!isInt(p) || p < 0 || p > 65535) {
      problems.set(
        "web",
        `${at("web", "port")}: web.port must be an integer from 0 to 65535; found ${
          JSON.stringify(p)
        }`,
      );
    } else webPort = p;
  } catch (e) {
    problems.set("web", (e as Error).message);
  }
  // [upkeep] is parsed by upkeep.ts (docs/leases-and-upkeep.md §6): its keys are known here.
  const upkeepTable = (doc as Record<string, unknown>).upkeep as
    | Record<string, unknown>
    | undefined;
  if (upkeepTable && typeof upkeepTable === "object") {
    void [upkeepTable.enabled, upkeepTable.check_interval, upkeepTable.renew_interval];
  }
  for (const u of unreadKeys(raw, used, text)) {
    const section = u.path.split(".")[0];
    const msg = describeUnknownKey(file, u);
    if (section === "shares" || section === "web") {
      if (!problems.has(section)) problems.set(section, msg);
    } else throw new ClientNodeError(msg);
  }
  const lazy = <T>(section: string, v: T): T => {
    const p = problems.get(section);
    if (p !== undefined) throw new ClientNodeError(p);
    return v;
  };
  return {
    nickname,
    refreshInterval,
    fanout,
    get shares() {
      return lazy("shares", shares);
    },
    get webPort() {
      return lazy("web", webPort);
    },
  };
}

export async function createClientNode(
  dirArg: string,
  introText: string,
  opts: {
    nickname?: string;
    refreshInterval?: number;
    webPort?: number;
    shares?: { k: number; n: number; happy: number };
  } = {},
): Promise<void> {
  const dir = normalizeDir(dirArg);
  parseIntroductionText(introText); // validate before touching the disk
  if (await exists(`${dir}/${CLIENT_CONFIG_FILE}`) || await exists(`${dir}/private`)) {
    throw new ClientNodeError(`${dir} already holds a node; choose another --dir`);
  }
  await Deno.mkdir(dir, { recursive: true });
  await makePrivateDir(dir);
  await GridNode.recordIntroduction(dir, introText);
  const config: ClientConfig = {
    nickname: opts.nickname ?? "",
    refreshInterval: opts.refreshInterval ?? DEFAULT_REFRESH_INTERVAL,
    fanout: DEFAULT_FANOUT,
    shares: { ...(opts.shares ?? DEFAULT_SHARES) },
    webPort: opts.webPort ?? DEFAULT_WEB_PORT,
  };
  await writeFileAtomic(`${dir}/${CLIENT_CONFIG_FILE}`, renderConfig(config));
}

export async function loadClientNode(dirArg: string): Promise<ClientNode> {
  const dir = normalizeDir(dirArg);
  const text = await readTextOrNull(`${dir}/${CLIENT_CONFIG_FILE}`);
  if (text === null) {
    throw new ClientNodeError(
      `${dir} is not a client node (no ${CLIENT_CONFIG_FILE}); create one with 'shoal client create-node'`,
    );
  }
  const config = parseClientConfig(text, `${dir}/${CLIENT_CONFIG_FILE}`);
  const grid = await GridNode.load(dir);
  if (!grid) {
    throw new ClientNodeError(
      `${dir} has no introduction text; recreate it with 'shoal client create-node'`,
    );
  }
  return { dir, config, grid };
}

/**
 * A Grid over the recorded servers, ready for file operations. When the
 * recorded list is older than the refresh interval (or missing), it is
 * refreshed first (one small request when nothing changed); if that fails,
 * the last good list is used.
 */
export async function openGrid(
  node: ClientNode,
  opts: { log?: (line: string) => void } = {},
): Promise<Grid> {
  const st = node.grid.state;
  const now = Math.floor(Date.now() / 1000);
  if (st.refreshedAt === null || now - st.refreshedAt >= node.config.refreshInterval) {
    try {
      const r = await node.grid.refresh({ fanout: node.config.fanout });
      for (const l of describeRefresh(r)) opts.log?.(l);
    } catch (e) {
      if (!node.grid.state.gsd) throw e;
      opts.log?.(`refresh failed, using the last recorded servers: ${(e as Error).message}`);
    }
  }
  const urls = recordedStorageUrls(node.grid.state).map((r) => r.url);
  if (urls.length === 0) {
    throw new ClientNodeError(
      "no storage servers are known yet: the grid has no announced servers",
    );
  }
  const { k, n } = node.config.shares;
  return node.grid.grid(urls, { k, n });
}

/** This node's convergence secret (32 bytes, created on first use). */
export function convergenceSecret(node: ClientNode): Promise<Uint8Array> {
  return loadOrCreateSecret(`${node.dir}/${CONVERGENCE_SECRET_FILE}`);
}

/** A recorded server as `servers --json` shows it (no readcap, no checkstring). */
export type ServerView = Omit<RecordedServer, "gsaReadcap" | "gsaCheckstring" | "boundServerId">;

/** A GSD entry whose announcement is not held yet (no readcap). */
export interface MissingView {
  petname: string;
  serverId: string | null;
  since: number;
  attempts: number;
  nextTry: number;
  problem: string;
}

export interface ServersReport {
  servers: ServerView[];
  missing: MissingView[];
  gsd: { seqnum: number; issued: number; expires: number; freshness: string } | null;
  refreshedAt: number | null;
}

export function serversReport(
  state: DiscoveryState,
  now = Math.floor(Date.now() / 1000),
): ServersReport {
  return {
    servers: state.servers.map((
      { gsaReadcap: _r, gsaCheckstring: _c, boundServerId: _b, ...view },
    ) => view),
    missing: (state.missing ?? []).map(({ gsaReadcap: _r, ...view }) => view),
    gsd: state.gsd
      ? {
        seqnum: state.gsd.seqnum,
        issued: state.gsd.issued,
        expires: state.gsd.expires,
        freshness: gsdFreshness(state.gsd, now),
      }
      : null,
    refreshedAt: state.refreshedAt,
  };
}

export function describeRefresh(r: RefreshResult): string[] {
  const lines: string[] = [];
  if (r.added.length) lines.push(`added: ${r.added.join(", ")}`);
  if (r.removed.length) lines.push(`removed: ${r.removed.join(", ")}`);
  if (r.updated.length) lines.push(`changed: ${r.updated.join(", ")}`);
  if (r.freshness && r.freshness !== "fresh") {
    lines.push(
      `WARNING: the grid service directory has ${
        r.freshness === "expired" ? "expired" : "expired past its grace period"
      }`,
    );
  }
  for (const p of r.problems) lines.push(`problem: ${p}`);
  return lines;
}

export interface RunClientOptions {
  /** Serve the web gateway and dashboard on 127.0.0.1:config.webPort (default true). */
  web?: boolean;
  /** Called once the gateway listens, with its URL and the dashboard URL (which carries the token). */
  onGateway?: (g: { url: string; dashboardUrl: string }) => void;
  /** Called instead of onGateway when the gateway could not start. */
  onGatewayFailed?: (reason: string) => void;
  /** Log the dashboard URL with its access token (default: the token is not logged). */
  showSecrets?: boolean;
}

/**
 * Refresh every interval until `signal` aborts; each outcome goes to `log` (no secrets).
 * Also serves the web gateway (lib/web) unless `opts.web` is false; if its port is taken,
 * the node keeps refreshing and says so.
 */
export async function runClient(
  node: ClientNode,
  signal: AbortSignal,
  log: (line: string) => void,
  opts: RunClientOptions = {},
): Promise<void> {
  const intervalMs = node.config.refreshInterval * 1000;
  // Upkeep (docs/leases-and-upkeep.md): lease renewal and repair of everything held.
  const upkeep = new Upkeep(node, await loadUpkeepConfig(node.dir), log);
  const gw = opts.web === false ? null : await startClientGateway(node, {
    signal,
    convergenceSecret: () => convergenceSecret(node),
    upkeep: () => upkeep.status(),
  }).catch((e) => {
    log(`web gateway not started: ${(e as Error).message}`);
    opts.onGatewayFailed?.((e as Error).message);
    return null;
  });
  if (gw) {
    log(`web gateway at ${gw.url}`);
    log(
      opts.showSecrets
        ? `dashboard: ${gw.url}?token=${gw.token}`
        : `dashboard: ${gw.url}?token=TOKEN (TOKEN is in ${node.dir}/private/api-token; ` +
          "--show-secrets logs the whole URL)",
    );
    opts.onGateway?.({ url: gw.url, dashboardUrl: `${gw.url}?token=${gw.token}` });
  }
  const watching = watchServers(node, signal, log, intervalMs);
  try {
    await Promise.all([refreshLoop(node, signal, log, intervalMs, gw), upkeep.run(signal)]);
  } finally {
    await watching;
    await gw?.close();
  }
}

/** Every interval, ask each recorded server whether it answers; log when one goes down or back up. */
async function watchServers(
  node: ClientNode,
  signal: AbortSignal,
  log: (line: string) => void,
  intervalMs: number,
): Promise<void> {
  const was = new Map<string, boolean>();
  while (!signal.aborted) {
    const st = await probeServers(node.grid, node.grid.state).catch(() => null);
    if (signal.aborted) break;
    for (const s of node.grid.state.servers) {
      const now = st?.get(s.serverId);
      if (!now) continue;
      const before = was.get(s.serverId);
      const name = s.nickname || s.petname;
      if (!now.up && before !== false) log(`server ${name} is down: ${now.error}`);
      if (now.up && before === false) log(`server ${name} is back up`);
      was.set(s.serverId, now.up);
    }
    await sleep(Math.max(intervalMs, 5000), signal);
  }
}

/** What a refresh can change: the GSD version and every GSA version. */
function viewKey(state: DiscoveryState): string {
  return [
    state.gsd?.checkstring ?? "",
    ...state.servers.map((s) => s.gsaCheckstring),
    `missing:${(state.missing ?? []).map((m) => m.petname).join(",")}`,
  ].join(",");
}

async function refreshLoop(
  node: ClientNode,
  signal: AbortSignal,
  log: (line: string) => void,
  intervalMs: number,
  gw: ClientGateway | null,
): Promise<void> {
  // Long poll (docs/discovery.md §5): each refresh waits on one server's slot watch for up to
  // the interval (at most 60 s), so a change is seen within a round trip of its write.
  const waitMs = Math.min(intervalMs, 60_000);
  let first = true;
  while (!signal.aborted) {
    const started = Date.now();
    const before = viewKey(node.grid.state);
    let pauseMs = intervalMs;
    // Missing announcements are retried with backoff (at most one interval apart): the poll
    // ends by the next retry, so a returning holder is seen within one interval.
    const nextTry = Math.min(...(node.grid.state.missing ?? []).map((m) => m.nextTry * 1000));
    const thisWaitMs = Math.max(0, Math.min(waitMs, nextTry - Date.now()));
    try {
      const r = await node.grid.refresh({
        fanout: node.config.fanout,
        wait: thisWaitMs / 1000,
        signal,
        retryMissing: "due",
        retryMaxSeconds: node.config.refreshInterval,
      });
      const changed = viewKey(node.grid.state) !== before;
      if (changed) pauseMs = 0; // changed: poll again at once
      else if (r.quick === "watch") pauseMs = thisWaitMs - (Date.now() - started); // answered early?
      if ((node.grid.state.missing ?? []).length) {
        const next = Math.min(...node.grid.state.missing!.map((m) => m.nextTry * 1000));
        pauseMs = Math.min(pauseMs, Math.max(0, next - Date.now()));
      }
      gw?.history.recordResult(r, node.grid.state);
      gw?.refreshed();
      const changes = describeRefresh(r);
      // Logged once when the view changes (a change is re-polled at once: not once per poll).
      if (first || changed || changes.length) {
        log(
          `refreshed: ${node.grid.state.servers.length} server(s), GSD version ${node.grid.state.gsd?.seqnum}`,
        );
      }
      for (const c of changes) log(c);
      first = false;
    } catch (e) {
      if (signal.aborted) break;
      gw?.history.recordFailure((e as Error).message, node.grid.state);
      log(`refresh failed (keeping the last good server list): ${(e as Error).message}`);
    }
    if (pauseMs <= 0 || signal.aborted) continue;
    await sleep(pauseMs, signal);
  }
}

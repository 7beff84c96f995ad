/**
 * The client node directory and its daemon. docs/client-node.md.
 *
 *   C/shoal.toml                  settings (nickname, refresh interval, fanout)
 *   C/private/introduction-text   the grid's introduction text (0600)
 *   C/private/servers.json        the recorded server list and GSD freshness (0600)
 *   C/private/lease-secret        this node's lease secret (0600)
 */
import { sleep } from "../../sleep.ts";
import { parse } from "smol-toml";
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
import {
  exists,
  loadOrCreateSecret,
  makePrivateDir,
  normalizeDir,
  readTextOrNull,
  writeFileAtomic,
} from "../nodefs.ts";

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

export function parseClientConfig(text: string, file: string): ClientConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ClientNodeError(`${file} is not valid TOML: ${(e as Error).message}`);
  }
  const c = (doc.client ?? {}) as Record<string, unknown>;
  const nickname = c.nickname ?? "";
  if (typeof nickname !== "string") {
    throw new ClientNodeError(`${file}: client.nickname must be text`);
  }
  const refreshInterval = c.refresh_interval ?? DEFAULT_REFRESH_INTERVAL;
  if (typeof refreshInterval !== "number" || !(refreshInterval >= 0.1) || refreshInterval > 86400) {
    throw new ClientNodeError(
      `${file}: client.refresh_interval must be a number of seconds between 0.1 and 86400`,
    );
  }
  const fanout = c.fanout ?? DEFAULT_FANOUT;
  if (typeof fanout !== "number" || !Number.isInteger(fanout) || fanout < 1 || fanout > 16) {
    throw new ClientNodeError(`${file}: client.fanout must be an integer from 1 to 16`);
  }
  const sh = (doc.shares ?? {}) as Record<string, unknown>;
  const k = sh.k ?? DEFAULT_SHARES.k;
  const n = sh.n ?? DEFAULT_SHARES.n;
  const happy = sh.happy ?? DEFAULT_SHARES.happy;
  const isInt = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x);
  if (
    !isInt(k) || !isInt(n) || !isInt(happy) || k < 1 || n < k || n > 256 || happy < 1 || happy > n
  ) {
    throw new ClientNodeError(
      `${file}: [shares] needs integers with 1 <= k <= n <= 256 and 1 <= happy <= n`,
    );
  }
  const web = (doc.web ?? {}) as Record<string, unknown>;
  const webPort = web.port ?? DEFAULT_WEB_PORT;
  if (!isInt(webPort) || webPort < 0 || webPort > 65535) {
    throw new ClientNodeError(`${file}: web.port must be an integer from 0 to 65535`);
  }
  return { nickname, refreshInterval, fanout, shares: { k, n, happy }, webPort };
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
export type ServerView = Omit<RecordedServer, "gsaReadcap" | "gsaCheckstring">;

export interface ServersReport {
  servers: ServerView[];
  gsd: { seqnum: number; issued: number; expires: number; freshness: string } | null;
  refreshedAt: number | null;
}

export function serversReport(
  state: DiscoveryState,
  now = Math.floor(Date.now() / 1000),
): ServersReport {
  return {
    servers: state.servers.map(({ gsaReadcap: _r, gsaCheckstring: _c, ...view }) => view),
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
    log(`dashboard: ${gw.url}?token=${gw.token}`);
    opts.onGateway?.({ url: gw.url, dashboardUrl: `${gw.url}?token=${gw.token}` });
  }
  try {
    await Promise.all([refreshLoop(node, signal, log, intervalMs, gw), upkeep.run(signal)]);
  } finally {
    await gw?.close();
  }
}

/** What a refresh can change: the GSD version and every GSA version. */
function viewKey(state: DiscoveryState): string {
  return [state.gsd?.checkstring ?? "", ...state.servers.map((s) => s.gsaCheckstring)].join(",");
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
  while (!signal.aborted) {
    const started = Date.now();
    const before = viewKey(node.grid.state);
    let pauseMs = intervalMs;
    try {
      const r = await node.grid.refresh({
        fanout: node.config.fanout,
        wait: waitMs / 1000,
        signal,
      });
      if (viewKey(node.grid.state) !== before) pauseMs = 0; // changed: poll again at once
      else if (r.quick === "watch") pauseMs = waitMs - (Date.now() - started); // answered early?
      gw?.history.recordResult(r, node.grid.state);
      gw?.refreshed();
      const changes = describeRefresh(r);
      if (r.full || changes.length) {
        log(
          `refreshed: ${node.grid.state.servers.length} server(s), GSD version ${node.grid.state.gsd?.seqnum}`,
        );
      }
      for (const c of changes) log(c);
    } catch (e) {
      if (signal.aborted) break;
      gw?.history.recordFailure((e as Error).message, node.grid.state);
      log(`refresh failed (keeping the last good server list): ${(e as Error).message}`);
    }
    if (pauseMs <= 0 || signal.aborted) continue;
    await sleep(pauseMs, signal);
  }
}

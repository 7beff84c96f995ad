/**
 * The client node directory and its daemon. docs/client-node.md.
 *
 *   C/shoal.toml                  settings (nickname, refresh interval, fanout)
 *   C/private/introduction-text   the grid's introduction text (0600)
 *   C/private/servers.json        the recorded server list and GSD freshness (0600)
 *   C/private/lease-secret        this node's lease secret (0600)
 */
import { parse } from "smol-toml";
import { type DiscoveryState, gsdFreshness, parseIntroductionText, type RefreshResult } from "../../discovery/mod.ts";
import { GridNode } from "../gridnode.ts";
import { exists, makePrivateDir, normalizeDir, readTextOrNull, writeFileAtomic } from "../nodefs.ts";

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
}

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
  if (typeof nickname !== "string") throw new ClientNodeError(`${file}: client.nickname must be text`);
  const refreshInterval = c.refresh_interval ?? DEFAULT_REFRESH_INTERVAL;
  if (typeof refreshInterval !== "number" || !(refreshInterval >= 0.1) || refreshInterval > 86400) {
    throw new ClientNodeError(`${file}: client.refresh_interval must be a number of seconds between 0.1 and 86400`);
  }
  const fanout = c.fanout ?? DEFAULT_FANOUT;
  if (typeof fanout !== "number" || !Number.isInteger(fanout) || fanout < 1 || fanout > 16) {
    throw new ClientNodeError(`${file}: client.fanout must be an integer from 1 to 16`);
  }
  return { nickname, refreshInterval, fanout };
}

export async function createClientNode(
  dirArg: string,
  introText: string,
  opts: { nickname?: string; refreshInterval?: number } = {},
): Promise<void> {
  const dir = normalizeDir(dirArg);
  parseIntroductionText(introText); // validate before touching the disk
  if (await exists(`${dir}/${CLIENT_CONFIG_FILE}`) || await exists(`${dir}/private`)) {
    throw new ClientNodeError(`${dir} already holds a node; choose another --dir`);
  }
  await Deno.mkdir(dir, { recursive: true });
  await makePrivateDir(dir);
  await GridNode.recordIntroduction(dir, introText);
  const config = {
    nickname: opts.nickname ?? "",
    refreshInterval: opts.refreshInterval ?? DEFAULT_REFRESH_INTERVAL,
    fanout: DEFAULT_FANOUT,
  };
  await writeFileAtomic(`${dir}/${CLIENT_CONFIG_FILE}`, renderConfig(config));
}

export async function loadClientNode(dirArg: string): Promise<ClientNode> {
  const dir = normalizeDir(dirArg);
  const text = await readTextOrNull(`${dir}/${CLIENT_CONFIG_FILE}`);
  if (text === null) {
    throw new ClientNodeError(`${dir} is not a client node (no ${CLIENT_CONFIG_FILE}); create one with 'shoal client create-node'`);
  }
  const config = parseClientConfig(text, `${dir}/${CLIENT_CONFIG_FILE}`);
  const grid = await GridNode.load(dir);
  if (!grid) throw new ClientNodeError(`${dir} has no introduction text; recreate it with 'shoal client create-node'`);
  return { dir, config, grid };
}

export interface ServerView {
  petname: string;
  nickname: string;
  serverId: string;
  storageUrls: string[];
  software: string;
  announced: number;
  gsaSeqnum: number;
}

export interface ServersReport {
  servers: ServerView[];
  gsd: { seqnum: number; issued: number; expires: number; freshness: string } | null;
  refreshedAt: number | null;
}

export function serversReport(state: DiscoveryState, now = Math.floor(Date.now() / 1000)): ServersReport {
  return {
    servers: state.servers.map((s) => ({
      petname: s.petname,
      nickname: s.nickname,
      serverId: s.serverId,
      storageUrls: s.storageUrls,
      software: s.software,
      announced: s.announced,
      gsaSeqnum: s.gsaSeqnum,
    })),
    gsd: state.gsd
      ? { seqnum: state.gsd.seqnum, issued: state.gsd.issued, expires: state.gsd.expires, freshness: gsdFreshness(state.gsd, now) }
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
    lines.push(`WARNING: the grid service directory has ${r.freshness === "expired" ? "expired" : "expired past its grace period"}`);
  }
  for (const p of r.problems) lines.push(`problem: ${p}`);
  return lines;
}

/** Refresh every interval until `signal` aborts; each outcome goes to `log` (no secrets). */
export async function runClient(node: ClientNode, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const intervalMs = node.config.refreshInterval * 1000;
  while (!signal.aborted) {
    try {
      const r = await node.grid.refresh({ fanout: node.config.fanout });
      const changes = describeRefresh(r);
      if (r.full || changes.length) {
        log(`refreshed: ${node.grid.state.servers.length} server(s), GSD version ${node.grid.state.gsd?.seqnum}`);
      }
      for (const c of changes) log(c);
    } catch (e) {
      log(`refresh failed (keeping the last good server list): ${(e as Error).message}`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, intervalMs);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }
}

import {
  ClientNodeError,
  createClientNode,
  DEFAULT_SHARES,
  describeRefresh,
  fmtBytes,
  loadClientNode,
  probeServers,
  redactStorageUrl,
  runClient,
  serversReport,
} from "../roles/client/mod.ts";
import { INTRO_OPTIONS, introductionTextOption } from "./secrets.ts";
import { fileCommands } from "./client_files.ts";
import { treeCommands } from "./client_trees.ts";
import { serveCommand } from "./serve.ts";
import { backupCommand } from "./client_backup.ts";
import {
  CliError,
  type Command,
  DIR_OPTION,
  isoTime,
  JSON_OPTION,
  optionalString,
  requireString,
  UsageError,
} from "./command.ts";

/** Node-directory and configuration problems: exit 1 with their message. */
async function clientErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ClientNodeError) throw new CliError(e.message);
    throw e;
  }
}

export const clientCommands: Command[] = [
  // The node's daemon and server list; file commands (lib/cli/client_files.ts) follow.
  {
    name: "create-node",
    summary: "create a client node that joins a grid from its introduction text",
    usage: "--dir DIR (--introducer-v3-file PATH|- | --introducer-v3 TEXT) [--nickname NAME] " +
      "[--refresh-interval SECONDS] [--shares-needed K --shares-total N --shares-happy H]",
    description: `
The introduction text grants use of the grid: pass it in a file (or '-' for stdin) with
--introducer-v3-file rather than on the command line, where other local users can see it.
Without --dir, the node is created in $SHOAL_DIR, else ~/.shoal.`,
    options: {
      dir: DIR_OPTION,
      ...INTRO_OPTIONS,
      nickname: { type: "string", value: "NAME", help: "a name for this node" },
      "refresh-interval": {
        type: "string",
        value: "SECONDS",
        help: "seconds between server-list refreshes (default 60)",
      },
      "shares-needed": {
        type: "string",
        value: "K",
        help: "[shares] k: shares needed to rebuild a file (default 3)",
      },
      "shares-total": { type: "string", value: "N", help: "[shares] n: shares made (default 10)" },
      "shares-happy": {
        type: "string",
        value: "H",
        help: "[shares] happy: distinct servers an upload needs (default 7)",
      },
    },
    async run({ values, err }) {
      const dir = requireString(values, "dir");
      const text = (await introductionTextOption(values, true))!;
      const ri = optionalString(values, "refresh-interval");
      const refreshInterval = ri === undefined ? undefined : Number(ri);
      if (refreshInterval !== undefined && !(refreshInterval >= 0.1 && refreshInterval <= 86400)) {
        throw new UsageError(
          "--refresh-interval must be a number of seconds between 0.1 and 86400",
        );
      }
      const int = (name: string, dflt: number) => {
        const v = optionalString(values, name);
        if (v === undefined) return dflt;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 256) {
          throw new UsageError(`--${name} must be an integer from 1 to 256`);
        }
        return n;
      };
      const shares = {
        k: int("shares-needed", DEFAULT_SHARES.k),
        n: int("shares-total", DEFAULT_SHARES.n),
        happy: int("shares-happy", DEFAULT_SHARES.happy),
      };
      if (shares.k > shares.n || shares.happy > shares.n) {
        throw new UsageError(
          `--shares-needed and --shares-happy must not exceed --shares-total; got k = ${shares.k}, ` +
            `n = ${shares.n}, happy = ${shares.happy}`,
        );
      }
      await clientErrors(() =>
        createClientNode(dir, text, {
          nickname: optionalString(values, "nickname"),
          refreshInterval,
          shares,
        })
      );
      err(
        `created client node ${dir}; 'shoal client servers --dir ${dir} --refresh' joins the grid now`,
      );
    },
  },
  {
    name: "servers",
    summary: "list the recorded storage servers and whether each answers (--refresh: join first)",
    usage: "--dir DIR [--json] [--refresh] [--show-secrets]",
    description: `
One line per server: nickname, server id (first 16 characters), up or down (asked just now, 3 s at
most), the space it uses for shares and the space it can still accept (from its answer), location
hints and the announcement's version. --json prints every field; storage URLs carry the server's
secret swissnum, shown as REDACTED unless --show-secrets is given.`,
    options: {
      dir: DIR_OPTION,
      json: JSON_OPTION,
      refresh: { type: "boolean", help: "read the grid service directory and announcements now" },
      "show-secrets": {
        type: "boolean",
        help: "print storage URLs with their swissnums (they grant use of the servers)",
      },
    },
    async run({ values, out, err }) {
      const node = await clientErrors(() => loadClientNode(requireString(values, "dir")));
      try {
        if (values.refresh) {
          const r = await node.grid.refresh({ fanout: node.config.fanout });
          if (!values.json) { for (const l of describeRefresh(r)) err(l); }
        }
        const rep = serversReport(node.grid.state);
        const status = await probeServers(node.grid);
        const show = values["show-secrets"] === true;
        if (values.json) {
          out(JSON.stringify(
            rep.servers.map((s) => ({
              ...s,
              storageUrls: show ? s.storageUrls : s.storageUrls.map(redactStorageUrl),
              up: status.get(s.serverId)?.up ?? null,
              used: status.get(s.serverId)?.used ?? null,
              availableSpace: status.get(s.serverId)?.availableSpace ?? null,
            })),
            null,
            2,
          ));
          for (const m of rep.missing) {
            err(`missing: announcement '${m.petname}' not read yet (${m.problem})`);
          }
          if (rep.gsd && rep.gsd.freshness !== "fresh") {
            err(`WARNING: the grid service directory has ${rep.gsd.freshness}`);
          }
          return;
        }
        if (!rep.gsd) {
          out(
            "no server list recorded yet; run with --refresh (or 'shoal client run') to join the grid",
          );
          return;
        }
        out(
          `GSD version ${rep.gsd.seqnum}, issued ${isoTime(rep.gsd.issued)}, expires ${
            isoTime(rep.gsd.expires)
          }` +
            (rep.gsd.freshness === "fresh" ? "" : `  *** ${rep.gsd.freshness.toUpperCase()} ***`),
        );
        if (rep.refreshedAt) out(`last refreshed ${isoTime(rep.refreshedAt)}`);
        const size = (n: number | undefined) => n === undefined ? "-" : fmtBytes(n);
        const rows = [
          ["NICKNAME", "SERVER ID", "STATUS", "USED", "AVAILABLE", "LOCATIONS", "ANNOUNCEMENT"],
        ];
        for (const s of rep.servers) {
          const locs = s.storageUrls.map((u) => u.slice(u.indexOf("@") + 1)).join(";");
          const st = status.get(s.serverId);
          rows.push([
            s.nickname || s.petname,
            s.serverId.slice(0, 16),
            st?.up ? "up" : "down",
            size(st?.used),
            size(st?.availableSpace),
            locs,
            `v${s.gsaSeqnum}`,
          ]);
        }
        for (const m of rep.missing) {
          rows.push([
            m.petname,
            (m.serverId ?? "?").slice(0, 16),
            "MISSING",
            "-",
            "-",
            `since ${isoTime(m.since)}, ${m.attempts} attempt(s): ${m.problem}`,
            "-",
          ]);
        }
        const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
        for (const r of rows) {
          out(r.map((c, i) => i < r.length - 1 ? c.padEnd(w[i]) : c).join("  "));
        }
        const down = rep.servers.filter((s) => !status.get(s.serverId)?.up).length;
        out(
          `${rep.servers.length - down} of ${rep.servers.length} server(s) up` +
            (rep.missing.length ? `, ${rep.missing.length} announcement(s) missing` : ""),
        );
      } finally {
        node.grid.close();
      }
    },
  },
  {
    name: "run",
    summary: "run the client node: keep the server list current until interrupted",
    usage: "--dir DIR [--show-secrets]",
    description: `
Refreshes the server list every refresh interval, logs servers added, removed, changed, down and
back up, and serves the web gateway and dashboard on 127.0.0.1. The dashboard's access token is not
logged (it is in DIR/private/api-token) unless --show-secrets is given.`,
    options: {
      dir: DIR_OPTION,
      "show-secrets": { type: "boolean", help: "log the dashboard URL with its access token" },
    },
    async run({ values, out }) {
      const node = await clientErrors(() => loadClientNode(requireString(values, "dir")));
      const ac = new AbortController();
      const stop = () => ac.abort();
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
      const log = (l: string) => out(`${new Date().toISOString()} ${l}`);
      log(`client node ${node.dir} running; refreshing every ${node.config.refreshInterval}s`);
      try {
        await runClient(node, ac.signal, log, { showSecrets: values["show-secrets"] === true });
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGTERM", stop);
        node.grid.close();
        log("stopped");
      }
    },
  },
  ...fileCommands,
  ...treeCommands,
  serveCommand,
  backupCommand,
];

import {
  createClientNode,
  describeRefresh,
  loadClientNode,
  runClient,
  serversReport,
} from "../roles/client/mod.ts";
import { fileCommands } from "./client_files.ts";
import { treeCommands } from "./client_trees.ts";
import {
  type Command,
  DIR_OPTION,
  isoTime,
  JSON_OPTION,
  optionalString,
  requireString,
  UsageError,
} from "./command.ts";

export const clientCommands: Command[] = [
  // The node's daemon and server list; file commands (lib/cli/client_files.ts) follow.
  {
    name: "create-node",
    summary: "create a client node that joins a grid from its introduction text",
    usage: "--dir DIR --introducer-v3 TEXT [--nickname NAME]",
    options: {
      dir: DIR_OPTION,
      "introducer-v3": {
        type: "string",
        value: "TEXT",
        help: "the introduction text from the grid operator",
      },
      nickname: { type: "string", value: "NAME", help: "a name for this node" },
      "refresh-interval": {
        type: "string",
        value: "SECONDS",
        help: "seconds between server-list refreshes (default 60)",
      },
    },
    async run({ values, err }) {
      const dir = requireString(values, "dir");
      const text = requireString(values, "introducer-v3");
      const ri = optionalString(values, "refresh-interval");
      const refreshInterval = ri === undefined ? undefined : Number(ri);
      if (refreshInterval !== undefined && !(refreshInterval >= 0.1 && refreshInterval <= 86400)) {
        throw new UsageError(
          "--refresh-interval must be a number of seconds between 0.1 and 86400",
        );
      }
      await createClientNode(dir, text, {
        nickname: optionalString(values, "nickname"),
        refreshInterval,
      });
      err(
        `created client node ${dir}; 'shoal client servers --dir ${dir} --refresh' joins the grid now`,
      );
    },
  },
  {
    name: "servers",
    summary: "list the recorded storage servers (--refresh: join/refresh first)",
    usage: "--dir DIR [--json] [--refresh]",
    options: {
      dir: DIR_OPTION,
      json: JSON_OPTION,
      refresh: { type: "boolean", help: "read the grid service directory and announcements now" },
    },
    async run({ values, out, err }) {
      const node = await loadClientNode(requireString(values, "dir"));
      try {
        if (values.refresh) {
          const r = await node.grid.refresh({ fanout: node.config.fanout });
          if (!values.json) { for (const l of describeRefresh(r)) err(l); }
        }
        const rep = serversReport(node.grid.state);
        if (values.json) {
          out(JSON.stringify(rep.servers, null, 2));
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
        for (const s of rep.servers) {
          const locs = s.storageUrls.map((u) => u.slice(u.indexOf("@") + 1)).join(";");
          out(`${s.nickname}\t${s.serverId.slice(0, 16)}\t${locs}\tGSA v${s.gsaSeqnum}`);
        }
      } finally {
        node.grid.close();
      }
    },
  },
  {
    name: "run",
    summary: "run the client node: keep the server list current until interrupted",
    usage: "--dir DIR",
    options: { dir: DIR_OPTION },
    async run({ values, out }) {
      const node = await loadClientNode(requireString(values, "dir"));
      const ac = new AbortController();
      const stop = () => ac.abort();
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
      const log = (l: string) => out(`${new Date().toISOString()} ${l}`);
      log(`client node running; refreshing every ${node.config.refreshInterval}s`);
      try {
        await runClient(node, ac.signal, log);
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
];

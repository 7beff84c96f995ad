/** The `shoal storage` commands: create, run, url, join, announcement. */
import { base32Encode } from "../codec/mod.ts";
import {
  ConfigError,
  createStorageNode,
  formatHostPort,
  loadStorageNode,
  NodeDirError,
  parseHostPort,
  parseSize,
  runStorageNode,
  storageUrlText,
} from "../roles/storage/mod.ts";
import {
  announcementReadcap,
  joinGrid,
  publishAnnouncement,
  renewDiscoveryLeases,
} from "../roles/storage/announce.ts";
import { GridNode } from "../roles/gridnode.ts";
import {
  CliError,
  type Command,
  type CommandContext,
  DIR_OPTION,
  optionalString,
  requireString,
  stringList,
  UsageError,
} from "./command.ts";
import { INTRO_OPTIONS, introductionTextOption } from "./secrets.ts";

/** This machine's non-loopback IP addresses, for a hint. */
function localAddresses(): string[] {
  try {
    return [
      ...new Set(
        Deno.networkInterfaces()
          .filter((i) =>
            !i.address.startsWith("127.") && i.address !== "::1" && !i.address.startsWith("fe80")
          )
          .map((i) => i.family === "IPv6" ? `[${i.address}]` : i.address),
      ),
    ];
  } catch {
    return [];
  }
}

/** Turn node-directory and config problems into exit-1 errors with their message. */
async function nodeErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError || e instanceof NodeDirError) throw new CliError(e.message);
    throw e;
  }
}

const create: Command = {
  name: "create",
  summary: "create a storage node directory (config, TLS key and certificate, swissnum)",
  usage:
    "--dir DIR --listen HOST:PORT [--location HOST:PORT]... [--nickname NAME] [--reserved-space SIZE] [--metrics-listen HOST:PORT]",
  description: `
Creates DIR/shoal.toml (edit it while the node is stopped), DIR/tls-cert.pem, and the
secrets DIR/private/tls-key.pem and DIR/private/swissnum (mode 0600). Refuses to touch a
directory that already holds a node. --location (repeatable) sets the addresses clients
use; it defaults to the --listen address. SIZE is e.g. 0, 500M, 10G, 1T (default 1G).
--metrics-listen serves OpenMetrics at http://HOST:PORT/metrics over plain HTTP without
authentication (off by default; keep it on loopback; docs/metrics.md).`,
  options: {
    dir: DIR_OPTION,
    listen: {
      type: "string",
      value: "HOST:PORT",
      help: "address to listen on, e.g. 127.0.0.1:7001",
    },
    location: {
      type: "string",
      multiple: true,
      value: "HOST:PORT",
      help: "location hint for the storage URL",
    },
    nickname: { type: "string", value: "NAME", help: "a name for people (announced, not secret)" },
    "reserved-space": {
      type: "string",
      value: "SIZE",
      help: "free disk space to leave untouched (default 1G)",
    },
    "metrics-listen": {
      type: "string",
      value: "HOST:PORT",
      help: "serve /metrics over plain HTTP here ([metrics] listen; off by default)",
    },
    "introducer-v3": {
      type: "string",
      value: "TEXT",
      help: "join this grid at once (as 'shoal storage join'); prints the announcement readcap",
    },
    "introducer-v3-file": {
      type: "string",
      value: "PATH",
      help: "as --introducer-v3, reading the text from PATH ('-': stdin)",
    },
  },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    const listen = requireString(ctx.values, "listen");
    const locations = stringList(ctx.values, "location");
    const reserved = optionalString(ctx.values, "reserved-space");
    const metricsListen = optionalString(ctx.values, "metrics-listen");
    for (
      const [flag, v] of [
        ["listen", listen],
        ...locations.map((l) => ["location", l]),
        ...(metricsListen !== undefined ? [["metrics-listen", metricsListen]] : []),
      ]
    ) {
      try {
        parseHostPort(v);
      } catch (e) {
        throw new UsageError(`--${flag}: ${(e as Error).message}`);
      }
    }
    const wildcard = (hp: string) => {
      const h = parseHostPort(hp).host;
      return h === "0.0.0.0" || h === "::";
    };
    if (wildcard(listen) && (locations.length === 0 || locations.some(wildcard))) {
      const port = parseHostPort(listen).port;
      const mine = localAddresses();
      throw new UsageError(
        `--listen ${listen} listens on every address, but clients need one they can reach: ` +
          `add --location HOST:${port} (repeatable)` +
          (mine.length ? `; this machine's addresses: ${mine.join(", ")}` : ""),
      );
    }
    const text = await introductionTextOption(ctx.values, false);
    if (reserved !== undefined) {
      try {
        parseSize(reserved);
      } catch (e) {
        throw new UsageError(`--reserved-space: ${(e as Error).message}`);
      }
    }
    const node = await nodeErrors(() =>
      createStorageNode({
        dir,
        listen,
        locations,
        nickname: optionalString(ctx.values, "nickname"),
        reservedSpace: reserved,
        metricsListen,
      })
    );
    ctx.err(`created storage node in ${node.dir}`);
    ctx.err(`  listen:    ${formatHostPort(node.config.listen)}`);
    ctx.err(`  locations: ${node.config.locations.join(", ")}`);
    ctx.err(`  server id: ${base32Encode(node.pin)}`);
    ctx.err(
      `start it with 'shoal storage run --dir ${node.dir}'; 'shoal storage url --dir ${node.dir}' prints its storage URL`,
    );
    if (text !== undefined) await joinAndAnnounce(node.dir, text, ctx);
  },
};

/** Record the text, print the GSA readcap, and publish the GSA where possible. */
async function joinAndAnnounce(dir: string, text: string, ctx: CommandContext): Promise<void> {
  const readcap = await joinGrid(dir, text);
  ctx.out(readcap);
  const node = await loadStorageNode(dir);
  const grid = (await GridNode.load(dir))!;
  try {
    const r = await publishAnnouncement(node, grid);
    // A joined server keeps the GSD alive: its lease starts now, not when its daemon next runs.
    await renewDiscoveryLeases(node, grid).catch(() => {});
    if (r.refreshError) ctx.err(`note: could not read the grid yet: ${r.refreshError}`);
    ctx.err(
      r.published
        ? `announcement version ${r.seqnum} written to ${r.holding} of ${r.servers} known server(s)`
        : `announcement version ${r.seqnum} is held by ${
          r.holding + r.pushed
        } of ${r.servers} known server(s)`,
    );
    if (r.failures.length || r.unreachable) {
      ctx.err("servers not reached now get it when this server runs ('shoal storage run')");
    }
  } catch (e) {
    ctx.err(
      `note: announcement not published yet (${
        (e as Error).message
      }); 'shoal storage run' publishes it`,
    );
  } finally {
    grid.close();
  }
  ctx.err(
    `give the readcap above to the grid operator: 'shoal operator add-announcement --dir OP READCAP'`,
  );
}

const join: Command = {
  name: "join",
  summary: "join a grid: record its introduction text and publish this server's announcement",
  usage: "--dir DIR (--introducer-v3-file PATH|- | --introducer-v3 TEXT)",
  description: `
Records the introduction text in DIR/private/, creates this server's announcement (GSA)
writecap in DIR/private/gsa-writecap (kept only here: only this server can change its
announcement), writes the announcement to every server it knows (the grid's servers and
itself if running), and prints the announcement readcap alone on stdout for the operator.`,
  options: { dir: DIR_OPTION, ...INTRO_OPTIONS },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    const text = (await introductionTextOption(ctx.values, true))!;
    await nodeErrors(() => loadStorageNode(dir));
    await joinAndAnnounce(dir, text, ctx);
  },
};

const announcement: Command = {
  name: "announcement",
  summary: "print this server's announcement (GSA) readcap",
  usage: "--dir DIR",
  options: { dir: DIR_OPTION },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    await nodeErrors(() => loadStorageNode(dir));
    ctx.out(await announcementReadcap(dir));
  },
};

const run: Command = {
  name: "run",
  summary: "run the storage server until SIGINT or SIGTERM",
  usage: "--dir DIR",
  description: `
Serves the storage protocol over HTTPS on the configured listen address. Prints
'listening on HOST:PORT' on stdout once it accepts connections. On SIGINT or SIGTERM it
stops accepting, lets requests in flight finish (up to 10 seconds) and exits 0.`,
  options: { dir: DIR_OPTION },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    const node = await nodeErrors(() => loadStorageNode(dir));
    const ac = new AbortController();
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const onSignal = () => ac.abort();
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    try {
      await nodeErrors(() =>
        runStorageNode(node, {
          signal: ac.signal,
          onListen: (a) =>
            ctx.out(
              `listening on ${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`,
            ),
          log: ctx.err,
        })
      );
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    }
    ctx.err("storage server stopped");
  },
};

const url: Command = {
  name: "url",
  summary: "print this server's storage URL (a secret: it grants use of the server)",
  usage: "--dir DIR",
  options: { dir: DIR_OPTION },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    const node = await nodeErrors(() => loadStorageNode(dir));
    ctx.out(storageUrlText(node));
  },
};

export const storageCommands: Command[] = [create, run, url, join, announcement];

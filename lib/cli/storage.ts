/** The `shoal storage` commands: create, run, url. (`join` and `announcement` come later.) */
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
  CliError,
  type Command,
  DIR_OPTION,
  optionalString,
  requireString,
  stringList,
  UsageError,
} from "./command.ts";

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
    "--dir DIR --listen HOST:PORT [--location HOST:PORT]... [--nickname NAME] [--reserved-space SIZE]",
  description: `
Creates DIR/shoal.toml (edit it while the node is stopped), DIR/tls-cert.pem, and the
secrets DIR/private/tls-key.pem and DIR/private/swissnum (mode 0600). Refuses to touch a
directory that already holds a node. --location (repeatable) sets the addresses clients
use; it defaults to the --listen address. SIZE is e.g. 0, 500M, 10G, 1T (default 1G).`,
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
  },
  async run(ctx) {
    const dir = requireString(ctx.values, "dir");
    const listen = requireString(ctx.values, "listen");
    const locations = stringList(ctx.values, "location");
    const reserved = optionalString(ctx.values, "reserved-space");
    for (const [flag, v] of [["listen", listen], ...locations.map((l) => ["location", l])]) {
      try {
        parseHostPort(v);
      } catch (e) {
        throw new UsageError(`--${flag}: ${(e as Error).message}`);
      }
    }
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
      })
    );
    ctx.err(`created storage node in ${node.dir}`);
    ctx.err(`  listen:    ${formatHostPort(node.config.listen)}`);
    ctx.err(`  locations: ${node.config.locations.join(", ")}`);
    ctx.err(`  server id: ${base32Encode(node.pin)}`);
    ctx.err(
      `start it with 'shoal storage run --dir ${node.dir}'; 'shoal storage url --dir ${node.dir}' prints its storage URL`,
    );
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

export const storageCommands: Command[] = [create, run, url];

/**
 * `shoal client serve webdav|restic`: a standard-protocol frontend over one directory tree
 * (docs/webdav.md, docs/restic.md). It prints the URL with credentials as the last line on
 * stdout and serves until SIGINT or SIGTERM. Nothing is logged per request.
 */
import { FilesError, loadClientNode } from "../roles/client/mod.ts";
import { frontendPassword, openServedFs } from "../roles/client/frontends.ts";
import { FRONTEND_USER, serveFrontend } from "../web/frontend.ts";
import { WebdavServer } from "../web/webdav/server.ts";
import { ResticServer } from "../web/restic/server.ts";
import { CliError, type Command, DIR_OPTION, requireString, UsageError } from "./command.ts";

export function parseListen(text: string): { hostname: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError("--listen must be HOST:PORT (PORT 0 picks a free one)");
  }
  return { hostname: m[1].replace(/^\[|\]$/g, ""), port };
}

export const serveCommand: Command = {
  name: "serve",
  summary: "serve a directory over WebDAV or restic's REST protocol until interrupted",
  usage: "webdav|restic --dir DIR --path ALIAS[:PATH] [--listen HOST:PORT] [--read-only]",
  description: `
webdav: the tree under --path over WebDAV (class 2); mount it or point rclone, cadaver, a file
manager at the printed URL. restic: a restic repository (REST protocol v2) stored under --path
(created when missing); run restic with -r and the printed URL. Both listen on 127.0.0.1 unless
--listen says otherwise, use HTTP Basic authentication with user 'shoal' and a password kept in
DIR/private/{webdav,restic}-password (0600, made once), and print the URL with the credentials
as the last line on stdout. See docs/webdav.md and docs/restic.md.`,
  positionals: ["KIND"],
  options: {
    dir: DIR_OPTION,
    path: { type: "string", value: "ALIAS[:PATH]", help: "the directory to serve" },
    listen: {
      type: "string",
      value: "HOST:PORT",
      help: "address to listen on (default 127.0.0.1:0, a free port)",
    },
    "read-only": { type: "boolean", help: "refuse every change (webdav)" },
  },
  async run({ values, positionals, out, err }) {
    const kind = positionals[0];
    if (kind !== "webdav" && kind !== "restic") {
      throw new UsageError("serve what? 'webdav' or 'restic'");
    }
    const { hostname, port } = parseListen(
      typeof values.listen === "string" ? values.listen : "127.0.0.1:0",
    );
    const node = await loadClientNode(requireString(values, "dir"));
    const ac = new AbortController();
    const stop = () => ac.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    try {
      const readOnly = values["read-only"] === true;
      let fs;
      try {
        fs = await openServedFs(node, requireString(values, "path"), {
          readOnly,
          create: kind === "restic",
          log: err,
        });
      } catch (e) {
        if (e instanceof FilesError) throw new CliError(e.message);
        throw e;
      }
      const password = await frontendPassword(node, kind);
      const restic = kind === "restic"
        ? new ResticServer({
          fs,
          user: FRONTEND_USER,
          password,
          journalDir: `${node.dir}/private/restic-journal`,
          log: err,
        })
        : null;
      // Replays what a killed earlier run journalled, before anything is answered.
      await restic?.open();
      const handler = restic
        ? restic.handler
        : new WebdavServer({ fs, user: FRONTEND_USER, password, readOnly }).handler;
      const srv = await serveFrontend(handler, hostname, port, ac.signal).catch((e) => {
        throw new CliError((e as Error).message);
      });
      const u = new URL(srv.url);
      u.username = FRONTEND_USER;
      u.password = password;
      err(`serving ${kind} until interrupted (Ctrl-C)${readOnly ? ", read-only" : ""}`);
      out(kind === "restic" ? `rest:${u.href}` : u.href);
      await srv.finished;
      await restic?.close();
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      node.grid.close();
    }
  },
};

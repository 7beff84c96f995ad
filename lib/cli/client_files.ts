/**
 * The client's file commands (put, get, ls, mkdir, ln, rm, mv, cp, check,
 * verify, repair, alias). Thin: argument handling and printing only; the work
 * is in lib/roles/client/files.ts; the session setup in client_session.ts. Spec:
 * docs/client-commands.md.
 */
import {
  addAlias,
  FilesError,
  loadAliases,
  type LsRow,
  removeAlias,
  renewLeases,
  walkPath,
} from "../roles/client/mod.ts";
import { withSession } from "./client_session.ts";
import {
  CliError,
  type Command,
  type CommandContext,
  DIR_OPTION,
  EXIT_FAILURE,
  JSON_OPTION,
  requireString,
  UsageError,
} from "./command.ts";

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

async function writeStdout(chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += await Deno.stdout.write(chunk.subarray(off));
}

function fmtTime(t: number | null): string {
  return t === null
    ? "-".padEnd(16)
    : new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
}

function longRow(r: LsRow): string {
  const t = r.type === "directory" ? "d" : r.type === "mutable-file" ? "m" : "-";
  const size = r.size === null ? "-" : String(r.size);
  return `${t}${r.writable ? "w" : "r"} ${size.padStart(12)} ${fmtTime(r.mtime)} ${r.name}${
    r.type === "directory" ? "/" : ""
  }`;
}

const CHECK_REPAIR_OPTION = {
  type: "boolean",
  help: "repair the object when it is not healthy (as 'repair')",
} as const;

const healthCommand = (name: "check" | "verify" | "repair", summary: string): Command => ({
  name,
  summary,
  usage: name === "repair"
    ? "--dir DIR [--verify] [--json] CAP|PATH"
    : name === "check"
    ? "--dir DIR [--repair] [--json] CAP|PATH"
    : "--dir DIR [--json] CAP|PATH",
  description: name === "repair"
    ? `
Re-creates missing shares of an immutable file (on the servers that should hold them) or republishes
a mutable file or directory everywhere. With --verify (immutable files), every block is downloaded
and checked first, and a share with a bad block counts as missing: a new copy goes to another
server. Exit code 0 when the object is healthy after repair, 1 when it is not.`
    : "Exit code 0 when the object is healthy, 1 when it is not.",
  options: name === "repair"
    ? {
      dir: DIR_OPTION,
      json: JSON_OPTION,
      verify: {
        type: "boolean",
        help: "check every block first; shares with a bad block count as missing",
      },
    }
    : name === "check"
    ? { dir: DIR_OPTION, json: JSON_OPTION, repair: CHECK_REPAIR_OPTION }
    : { dir: DIR_OPTION, json: JSON_OPTION },
  positionals: ["CAP|PATH"],
  async run(ctx) {
    const json = ctx.values.json === true;
    const verify = ctx.values.verify === true;
    // `check --repair` is `repair` (docs/client-commands.md §4).
    const mode = name === "check" && ctx.values.repair === true ? "repair" : name;
    const rep = await withSession(ctx, json, (s) => s.health(ctx.positionals[0], mode, { verify }));
    if (json) {
      ctx.out(
        JSON.stringify(
          {
            kind: rep.kind,
            healthy: rep.healthy,
            recoverable: rep.recoverable,
            repaired: rep.repaired,
            detail: rep.detail,
          },
          null,
          2,
        ),
      );
    } else {
      for (const l of rep.summary) ctx.out(l);
    }
    return rep.healthy ? undefined : EXIT_FAILURE;
  },
});

const renewLeasesCommand: Command = {
  name: "renew-leases",
  summary:
    "renew this node's leases on everything reachable from the given paths (default: all held)",
  usage: "--dir DIR [--json] [CAP|PATH]...",
  description: `
Storage servers with garbage collection on delete shares whose leases have all expired (31 days by
default). 'shoal client run' renews by itself; without it, run this regularly (e.g. weekly, from
cron): it walks every directory reachable from the given paths or caps (when none are given: every
alias and every recorded unlinked upload) and adds or renews this node's lease on each object on
every server holding it. Exit code 1 when some object was found on no server.`,
  options: { dir: DIR_OPTION, json: JSON_OPTION },
  positionals: ["[CAP|PATH]..."],
  async run(ctx) {
    const json = ctx.values.json === true;
    const rep = await withSession(ctx, json, (s) => renewLeases(s, ctx.positionals));
    if (json) ctx.out(JSON.stringify(rep, null, 2));
    else {
      ctx.out(
        `${rep.objects} object(s): ${rep.renewed} lease(s) renewed, ${rep.missing} found on no server`,
      );
      for (const p of rep.problems) ctx.out(`problem: ${p}`);
    }
    return rep.missing || rep.problems.length ? EXIT_FAILURE : undefined;
  },
};

const LS_RECURSIVE_OPTION = {
  type: "boolean",
  short: "R",
  help: "list everything below, one path per line (each object once)",
} as const;

/** `ls -R`: every path below the directory, sorted, directories with a trailing '/'. */
async function lsRecursive(ctx: CommandContext): Promise<void> {
  const objs = await withSession(ctx, true, (s) => walkPath(s, ctx.positionals[0]));
  const rows = objs.filter((o) => o.rel !== "").map((o) =>
    ctx.values.json
      ? { path: o.rel, type: o.kind, size: o.size }
      : `${o.rel}${o.kind === "directory" ? "/" : ""}`
  );
  rows.sort((a, b) => {
    const x = typeof a === "string" ? a : a.path;
    const y = typeof b === "string" ? b : b.path;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  if (ctx.values.json) ctx.out(JSON.stringify(rows, null, 2));
  else for (const r of rows) ctx.out(r as string);
}

/**
 * Run `fn` with an AbortSignal that SIGINT (Ctrl-C) or SIGTERM aborts: an upload
 * in progress then aborts its allocations on every server before the command
 * exits 1 (docs/leases-and-upkeep.md §7). A second signal exits at once.
 */
async function whileInterruptible<T>(
  ctx: CommandContext,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) Deno.exit(130);
    ctx.err(
      "shoal: interrupted; aborting the upload on every server (interrupt again to quit now)",
    );
    ac.abort(new CliError("interrupted: the upload was aborted on every server"));
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    return await fn(ac.signal);
  } catch (e) {
    if (ac.signal.aborted) throw ac.signal.reason;
    throw e;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
}

export const fileCommands: Command[] = [
  {
    name: "put",
    summary: "upload a file (or stdin) and print its cap; optionally link it at DEST",
    usage: "--dir DIR [--mutable] [--no-convergence] FILE|- [DEST]",
    description: `
Uploads FILE ('-' reads stdin) as an immutable file (or a mutable one with --mutable) and prints
its cap alone on stdout. With DEST (ALIAS:path or CAP/path) it is also linked there: into DEST if
DEST is a directory; an existing mutable file at DEST (writecap held) is overwritten in place.`,
    options: {
      dir: DIR_OPTION,
      mutable: { type: "boolean", help: "create a mutable file (its writecap is printed)" },
      "no-convergence": {
        type: "boolean",
        help: "random key: identical files do not share storage",
      },
    },
    positionals: ["FILE|-", "[DEST]"],
    async run(ctx) {
      const [file, dest] = ctx.positionals;
      if (ctx.values.mutable && ctx.values["no-convergence"]) {
        throw new UsageError(
          "--no-convergence applies to immutable files only; drop it or --mutable",
        );
      }
      const cap = await whileInterruptible(ctx, (signal) =>
        withSession(ctx, false, (s) =>
          s.put(
            file === "-"
              ? { kind: "stream", stream: Deno.stdin.readable }
              : { kind: "file", path: file },
            dest,
            {
              mutable: ctx.values.mutable === true,
              convergence: ctx.values["no-convergence"] !== true,
            },
          ), { signal }));
      ctx.out(cap);
    },
  },
  {
    name: "get",
    summary: "download a file to OUT (or stdout)",
    usage: "--dir DIR CAP|PATH [OUT|-]",
    description:
      "OUT is written as OUT.tmp-XXXXXXXX and renamed only when every byte has been verified.",
    options: { dir: DIR_OPTION },
    positionals: ["CAP|PATH", "[OUT]"],
    async run(ctx) {
      const [src, out] = ctx.positionals;
      await withSession(
        ctx,
        out === undefined || out === "-",
        (s) =>
          s.get(
            src,
            out === undefined || out === "-"
              ? { kind: "sink", write: writeStdout }
              : { kind: "file", path: out },
          ),
      );
    },
  },
  {
    name: "mkdir",
    summary: "create a directory (at PATH, or unlinked: its writecap is printed)",
    usage: "--dir DIR [-p] [PATH]",
    options: {
      dir: DIR_OPTION,
      parents: {
        type: "boolean",
        short: "p",
        help: "create missing parent directories too; an existing directory is no error",
      },
    },
    positionals: ["[PATH]"],
    async run(ctx) {
      const cap = await withSession(
        ctx,
        true,
        (s) => s.mkdir(ctx.positionals[0], { parents: ctx.values.parents === true }),
      );
      if (ctx.positionals[0] === undefined) ctx.out(cap);
    },
  },
  {
    name: "ls",
    summary: "list a directory (or describe a file)",
    usage: "--dir DIR [--json] [-l] [-R] CAP|PATH",
    options: {
      dir: DIR_OPTION,
      json: { type: "boolean", help: "print JSON (entries with their caps)" },
      long: { type: "boolean", short: "l", help: "type, access, size and modification time" },
      recursive: LS_RECURSIVE_OPTION,
    },
    positionals: ["CAP|PATH"],
    async run(ctx) {
      if (ctx.values.recursive) return await lsRecursive(ctx);
      const res = await withSession(ctx, true, (s) => s.ls(ctx.positionals[0]));
      if (ctx.values.json) {
        ctx.out(JSON.stringify(res, null, 2));
        return;
      }
      for (const r of res.entries) {
        if (!res.directory && r.name === "") {
          // A bare file cap has no name: describe the file instead of printing an empty line.
          ctx.out(
            longRow({ ...r, name: `(${r.type === "file" ? "immutable file" : "mutable file"})` }),
          );
          continue;
        }
        ctx.out(ctx.values.long ? longRow(r) : `${r.name}${r.type === "directory" ? "/" : ""}`);
      }
    },
  },
  {
    name: "ln",
    summary: "link the object SRC names (a cap or a path) at DEST",
    usage: "--dir DIR SRC DEST",
    options: { dir: DIR_OPTION },
    positionals: ["SRC", "DEST"],
    async run(ctx) {
      await withSession(ctx, true, (s) => s.ln(ctx.positionals[0], ctx.positionals[1]));
    },
  },
  {
    name: "rm",
    summary: "unlink PATH from its directory",
    usage: "--dir DIR PATH",
    options: { dir: DIR_OPTION },
    positionals: ["PATH"],
    async run(ctx) {
      await withSession(ctx, true, (s) => s.rm(ctx.positionals[0]));
    },
  },
  {
    name: "mv",
    summary: "move or rename an entry",
    usage: "--dir DIR SRC DEST",
    options: { dir: DIR_OPTION },
    positionals: ["SRC", "DEST"],
    async run(ctx) {
      await withSession(ctx, true, (s) => s.mv(ctx.positionals[0], ctx.positionals[1]));
    },
  },
  {
    name: "cp",
    summary: "copy files and directories between this computer and the grid",
    usage: "--dir DIR [-r] SRC... DEST",
    description: `
Grid paths are ALIAS:path or CAP/path; anything else is a local path (write ./a:b for a local
name containing ':'). With several SRC, DEST must be an existing directory. A directory SRC needs
-r; if DEST is an existing directory, SRC goes inside it under its own name.`,
    options: {
      dir: DIR_OPTION,
      recursive: { type: "boolean", short: "r", help: "copy directories recursively" },
    },
    positionals: ["SRC", "DEST", "MORE..."],
    async run(ctx) {
      const args = ctx.positionals;
      const dest = args[args.length - 1];
      const stats = await withSession(
        ctx,
        false,
        (s) => s.cp(args.slice(0, -1), dest, { recursive: ctx.values.recursive === true }),
      );
      if (ctx.isTty || stats.skipped.length) {
        ctx.err(
          `copied ${plural(stats.files, "file")}, ${plural(stats.bytes, "byte")}; ${
            plural(stats.directories, "directory", "directories")
          } created`,
        );
      }
      if (stats.skipped.length) {
        ctx.err(`shoal: skipped ${plural(stats.skipped.length, "local entry", "local entries")}:`);
        for (const s of stats.skipped) ctx.err(`  ${s}`);
        return EXIT_FAILURE;
      }
    },
  },
  healthCommand("check", "check that an object's shares are all present and valid"),
  healthCommand("verify", "download and check every block of an object"),
  healthCommand("repair", "re-create an object's missing shares"),
  {
    name: "alias",
    summary: "manage aliases: add NAME CAP | create NAME | list [--json] | remove NAME",
    usage: "--dir DIR add NAME DIRCAP | create NAME | list [--json] | remove NAME",
    description: `
Aliases name directory caps for paths like NAME:sub/file. They are kept in DIR/private/aliases.json
(mode 0600): they usually hold writecaps. 'list --json' prints the caps.`,
    options: { dir: DIR_OPTION, json: JSON_OPTION },
    positionals: ["ACTION", "ARGS..."],
    async run(ctx) {
      const [action, ...args] = ctx.positionals;
      const dir = requireString(ctx.values, "dir");
      const want = (n: number, usage: string) => {
        if (args.length !== n) throw new UsageError(`usage: shoal client alias ${usage}`);
      };
      const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
        try {
          return await fn();
        } catch (e) {
          if (e instanceof FilesError) {
            throw e.usage ? new UsageError(e.message) : new CliError(e.message);
          }
          throw e;
        }
      };
      switch (action) {
        case "add":
          want(2, "add --dir DIR NAME DIRCAP");
          // The node's role was checked first (lib/cli/main.ts); shoal.toml is not needed here.
          await wrap(() => addAlias(dir, args[0], args[1]));
          ctx.err(`added alias '${args[0]}'`);
          return;
        case "create": {
          want(1, "create --dir DIR NAME");
          await wrap(async () => {
            if ((await loadAliases(dir)).has(args[0])) {
              throw new FilesError(`alias '${args[0]}' already exists`);
            }
          });
          const cap = await withSession(ctx, true, (s) => s.mkdir());
          await wrap(() => addAlias(dir, args[0], cap));
          ctx.err(
            `created a new directory and the alias '${args[0]}' for it; use it as ${args[0]}:`,
          );
          return;
        }
        case "list": {
          want(0, "list --dir DIR [--json]");
          const aliases = await wrap(() => loadAliases(dir));
          const rows = [...aliases].map(([name, cap]) => ({
            name,
            writable: cap.startsWith("shoal:DIR-W"),
            cap,
          }));
          if (ctx.values.json) ctx.out(JSON.stringify(rows, null, 2));
          else for (const r of rows) ctx.out(`${r.name}\t${r.writable ? "writable" : "read-only"}`);
          return;
        }
        case "remove":
          want(1, "remove --dir DIR NAME");
          await wrap(() => removeAlias(dir, args[0]));
          ctx.err(`removed alias '${args[0]}' (the directory itself stays on the grid)`);
          return;
        default:
          throw new UsageError(
            "alias needs an action: add NAME DIRCAP, create NAME, list, or remove NAME",
          );
      }
    },
  },
  renewLeasesCommand,
];

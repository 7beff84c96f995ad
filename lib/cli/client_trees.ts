/**
 * Whole-tree client commands: deep-check, manifest, stats, du, and forget
 * (the upload record). Thin: argument handling and printing; the work is in
 * lib/roles/client/trees.ts, deepcheck.ts, uploads.ts. Spec:
 * docs/client-commands.md §4, docs/leases-and-upkeep.md.
 */
import { CapError, parseCap } from "../crypto/mod.ts";
import {
  deepCheckPath,
  describeHealth,
  forgetUpload,
  jsonSafe,
  loadClientNode,
  manifest,
  statsOf,
  walkPath,
} from "../roles/client/mod.ts";
import { objectCounter, withSession } from "./client_session.ts";
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

/** Every object reachable from PATH, with a "walking" counter on a terminal. */
async function walkWithCounter(ctx: CommandContext, path: string, quiet: boolean) {
  const prog = objectCounter(ctx, quiet);
  return await withSession(
    ctx,
    true,
    (s) =>
      walkPath(s, path, prog ? (n) => prog.update("walking", n, 0) : undefined).finally(() =>
        prog?.finish()
      ),
  );
}

function onePath(ctx: CommandContext, verb: string): string {
  if (ctx.positionals.length !== 1) throw new UsageError(`${verb} takes one CAP|PATH`);
  return ctx.positionals[0];
}

export const deepCheckCommand: Command = {
  name: "deep-check",
  summary: "check every object reachable from PATH (optionally verify, repair, renew leases)",
  usage: "--dir DIR [--verify] [--repair] [--add-lease] [--json] CAP|PATH",
  description: `
Walks every directory reachable from PATH (read-only links included; each object once, so cycles
end) and reports each object as healthy, not healthy but recoverable, or unrecoverable. Share
locations are asked for in batches: one request per server per level of directories and per 1000
files. --verify also downloads and checks every block; --repair re-creates what is missing (a
mutable file keeps its version); --add-lease renews this node's lease on every object. Exit code 0
when every object is healthy (after repair), 1 otherwise.`,
  options: {
    dir: DIR_OPTION,
    json: JSON_OPTION,
    verify: { type: "boolean", help: "download and check every block of every object" },
    repair: { type: "boolean", help: "repair what is not healthy" },
    "add-lease": { type: "boolean", help: "renew this node's lease on every object" },
  },
  positionals: ["CAP|PATH"],
  async run(ctx) {
    const path = onePath(ctx, "deep-check");
    const json = ctx.values.json === true;
    const prog = objectCounter(ctx, json);
    const rep = await withSession(ctx, true, (s) =>
      deepCheckPath(s, path, {
        verify: ctx.values.verify === true,
        repair: ctx.values.repair === true,
        addLease: ctx.values["add-lease"] === true,
        onProgress: prog ? (p, d, t) => prog.update(p, d, t) : undefined,
        log: json ? undefined : (l) => {
          prog?.finish();
          ctx.err(l);
        },
      }).finally(() => prog?.finish()));
    const c = rep.counts;
    if (json) {
      ctx.out(JSON.stringify(jsonSafe(rep), null, 2));
    } else {
      ctx.out(
        `${c.objects} object(s) (${c.directories} directories, ${c.files} files, ${c.mutableFiles} mutable files): ` +
          `${c.healthy} healthy, ${c.unhealthy} not healthy but recoverable, ${c.unrecoverable} unrecoverable`,
      );
      if (ctx.values.repair) ctx.out(`repaired ${c.repaired}, repair failed ${c.repairFailed}`);
      if (ctx.values["add-lease"]) {
        ctx.out(`leases renewed ${c.leasesRenewed}, renewals failed ${c.leaseFailures}`);
      }
      for (const o of rep.objects) {
        const h = o.after ?? o;
        if (h.healthy && o.problems.length === 0) continue;
        ctx.out(
          `  ${o.path}: ${
            h.healthy ? "healthy" : h.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable"
          }: ${describeHealth(h)}${o.repair ? ` [repair: ${o.repair}]` : ""}`,
        );
        for (const p of o.problems) ctx.out(`    ${p}`);
      }
      for (const u of rep.unreachable) ctx.out(`  server ${u.server} did not answer: ${u.error}`);
    }
    return c.healthy === c.objects ? undefined : EXIT_FAILURE;
  },
};

export const manifestCommand: Command = {
  name: "manifest",
  summary: "list every object reachable from PATH: its path and cap",
  usage: "--dir DIR [--storage-index] [--verify-cap] [--json] CAP|PATH",
  description: `
One line per object: its path below PATH ('.' for PATH itself) and its cap (the strongest held),
then with --storage-index its storage index and with --verify-cap its verify cap. Prints caps: its
output is as secret as the tree.`,
  options: {
    dir: DIR_OPTION,
    json: JSON_OPTION,
    "storage-index": { type: "boolean", help: "add each object's storage index" },
    "verify-cap": { type: "boolean", help: "add each object's verify cap" },
  },
  positionals: ["CAP|PATH"],
  async run(ctx) {
    const path = onePath(ctx, "manifest");
    const json = ctx.values.json === true;
    const prog = objectCounter(ctx, json);
    const rows = await withSession(ctx, true, (s) =>
      manifest(s, path, {
        storageIndex: ctx.values["storage-index"] === true,
        verifyCap: ctx.values["verify-cap"] === true,
        onProgress: prog ? (n) => prog.update("walking", n, 0) : undefined,
      }).finally(() => prog?.finish()));
    if (json) {
      ctx.out(JSON.stringify(rows, null, 2));
      return;
    }
    for (const r of rows) {
      ctx.out(
        [r.path || ".", r.cap, r.storageIndex, r.verifyCap].filter((x) => x !== undefined).join(
          " ",
        ),
      );
    }
  },
};

export const statsCommand: Command = {
  name: "stats",
  summary: "counts, total sizes and a size histogram of everything reachable from PATH",
  usage: "--dir DIR [--json] CAP|PATH",
  options: { dir: DIR_OPTION, json: JSON_OPTION },
  positionals: ["CAP|PATH"],
  async run(ctx) {
    const path = onePath(ctx, "stats");
    const json = ctx.values.json === true;
    const st = statsOf(await walkWithCounter(ctx, path, json));
    if (json) {
      ctx.out(JSON.stringify(st, null, 2));
      return;
    }
    ctx.out(`objects:          ${st.objects}`);
    ctx.out(`directories:      ${st.directories} (${st.links} links)`);
    ctx.out(`immutable files:  ${st.immutableFiles} (${st.immutableBytes} bytes)`);
    ctx.out(`mutable files:    ${st.mutableFiles} (${st.mutableBytes} bytes)`);
    ctx.out(`directory bytes:  ${st.directoryBytes}`);
    ctx.out(`largest file:     ${st.largestFile} bytes`);
    if (st.unlisted) ctx.out(`unlisted dirs:    ${st.unlisted}`);
    ctx.out("size histogram (bytes: files):");
    for (const [lo, hi, n] of st.histogram) {
      ctx.out(`  ${`${lo}-${hi}`.padStart(23)}: ${n}`);
    }
  },
};

export const duCommand: Command = {
  name: "du",
  summary: "total bytes of the files reachable from PATH",
  usage: "--dir DIR CAP|PATH",
  description: "Prints `BYTES<TAB>PATH`: the sizes of every file reachable from PATH, each once.",
  options: { dir: DIR_OPTION },
  positionals: ["CAP|PATH"],
  async run(ctx) {
    const path = onePath(ctx, "du");
    const st = statsOf(await walkWithCounter(ctx, path, false));
    ctx.out(`${st.immutableBytes + st.mutableBytes}\t${path.startsWith("shoal:") ? "." : path}`);
  },
};

export const forgetCommand: Command = {
  name: "forget",
  summary: "drop an upload from this node's record: `client run` stops renewing it",
  usage: "--dir DIR CAP",
  description: `
Uploads that were not linked anywhere (put without DEST, the web gateway's PUT /uri) are recorded in
DIR/private/uploads.jsonl, and 'shoal client run' keeps them alive. 'forget' drops the record of
CAP (any cap of the object): once its leases expire, servers that collect garbage may delete it.
It is still kept if it is reachable from an alias.`,
  options: { dir: DIR_OPTION },
  positionals: ["CAP"],
  async run(ctx) {
    const cap = onePath(ctx, "forget");
    try {
      parseCap(cap);
    } catch (e) {
      if (e instanceof CapError) throw new UsageError(`malformed cap: ${e.message}`);
      throw e;
    }
    const dir = requireString(ctx.values, "dir");
    try {
      await loadClientNode(dir);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    const n = await forgetUpload(dir, cap);
    if (n === 0) throw new CliError("that object is not in this node's record of uploads");
    ctx.err(`forgotten: ${n} record(s) dropped`);
  },
};

export const treeCommands: Command[] = [
  deepCheckCommand,
  manifestCommand,
  statsCommand,
  duCommand,
  forgetCommand,
];

/**
 * The role side of the standard-protocol frontends (`shoal client serve webdav|restic`): open
 * the node's grid, resolve `--path ALIAS[:PATH]` to a directory, hand lib/fs a context, and
 * keep each frontend's password in private/ (0600, created once, never logged).
 */
import { base32Encode } from "../../codec/mod.ts";
import { isDirCap, parseCap } from "../../crypto/mod.ts";
import { type FsContext, FsError, ShoalFs } from "../../fs/mod.ts";
import type { Grid } from "../../grid/mod.ts";
import { loadOrCreateSecret } from "../nodefs.ts";
import { loadAliases } from "./aliases.ts";
import { type ClientNode, convergenceSecret, openGrid } from "./node.ts";
import { FilesError, parseGridPath } from "./paths.ts";

/** The password of frontend `name` ("webdav", "restic"): private/NAME-password, 0600. */
export async function frontendPassword(node: ClientNode, name: string): Promise<string> {
  return base32Encode(await loadOrCreateSecret(`${node.dir}/private/${name}-password`));
}

/** An FsContext over this node: its grid (re-opened after each refresh interval), encoding, spool. */
export async function nodeFsContext(
  node: ClientNode,
  log?: (line: string) => void,
): Promise<FsContext> {
  const tmpDir = `${node.dir}/tmp`;
  await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(tmpDir, 0o700);
  let grid: Promise<Grid> | null = null;
  let openedAt = 0;
  return {
    tmpDir,
    shares: node.config.shares,
    convergenceSecret: () => convergenceSecret(node),
    getGrid() {
      const stale = Date.now() - openedAt >= node.config.refreshInterval * 1000;
      if (!grid || stale) {
        openedAt = Date.now();
        const next = openGrid(node, { log });
        // Keep the last good grid when a refresh fails.
        const prev = grid;
        grid = next.catch((e) => {
          if (prev) return prev;
          grid = null;
          throw e;
        });
      }
      return grid;
    },
  };
}

/**
 * The file system a frontend serves: `ALIAS[:PATH]` (or `CAP[/PATH]`) names a directory. With
 * `create`, missing directories along PATH are made (restic's repository may not exist yet).
 */
export async function openServedFs(
  node: ClientNode,
  pathArg: string,
  opts: { readOnly?: boolean; create?: boolean; log?: (line: string) => void } = {},
): Promise<ShoalFs> {
  const p = parseGridPath(
    pathArg.includes(":") || pathArg.startsWith("shoal:") ? pathArg : `${pathArg}:`,
  );
  let root: string;
  if (p.root.type === "cap") root = p.root.cap;
  else {
    const cap = (await loadAliases(node.dir)).get(p.root.name);
    if (cap === undefined) {
      throw new FilesError(
        `no alias named '${p.root.name}'; add one with 'shoal client alias create ${p.root.name}'`,
      );
    }
    root = cap;
  }
  if (!isDirCap(parseCap(root))) throw new FilesError("--path must name a directory");
  const ctx = await nodeFsContext(node, opts.log);
  let fs = await ShoalFs.open(root, ctx);
  for (let i = 0; i < p.segments.length; i++) {
    const here = p.segments.slice(0, i + 1);
    let n = await fs.stat(here);
    if (!n && opts.create) {
      n = await fs.mkdir(here).catch(async (e) => {
        if (e instanceof FsError && e.code === "exists") return await fs.resolve(here);
        throw e;
      });
    }
    if (!n) throw new FilesError(`not found: ${p.segments.slice(0, i + 1).join("/")}`);
    if (n.kind !== "directory") {
      throw new FilesError(`--path must name a directory: ${here.join("/")} is a file`);
    }
    if (i === p.segments.length - 1) fs = await ShoalFs.open(n.cap, ctx);
  }
  return opts.readOnly ? await ShoalFs.open(fs.root, ctx, { readOnly: true }) : fs;
}

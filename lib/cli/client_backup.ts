/** `shoal client backup` (docs/backup.md). Thin: arguments and printing; the work is in
 * lib/roles/client/backup.ts. */
import { backup, type BackupSummary, readExcludeFile } from "../roles/client/backup.ts";
import {
  CliError,
  type Command,
  DIR_OPTION,
  EXIT_FAILURE,
  JSON_OPTION,
  requireString,
  UsageError,
} from "./command.ts";
import { withSession } from "./client_session.ts";

const enc = new TextEncoder();

function summaryLines(s: BackupSummary): string[] {
  const mb = (s.bytesUploaded / 1e6).toFixed(1);
  return [
    `backup ${s.archive}: ${s.filesUploaded} files uploaded, ${s.filesReused} reused; ` +
    `${s.directoriesCreated} directories created, ${s.directoriesReused} reused; ` +
    `${mb} MB sent in ${s.seconds.toFixed(1)} s` +
    (s.rechecked ? `; ${s.rechecked} reused entries re-checked (${s.recheckFailed} damaged)` : ""),
  ];
}

export const backupCommand: Command = {
  name: "backup",
  summary: "incremental backup of a local directory to ALIAS:PATH/Archives/<time>, and PATH/Latest",
  usage:
    "--dir DIR [--exclude PATTERN]... [--exclude-from FILE] [--exclude-vcs] [--json] LOCALDIR ALIAS:PATH",
  description: `
Uploads LOCALDIR as a read-only snapshot PATH/Archives/<UTC time>/ and then points PATH/Latest at
it. Files unchanged since an earlier backup (size, mtime, ctime, inode, per DIR/private/
backupdb.sqlite) are not read again; unchanged directories reuse the earlier snapshot. Symlinks,
special files, unreadable files and files that change while read are reported and skipped; the
exit code is then 1 (the archive is still made). Restore: shoal client cp -r ALIAS:PATH/Latest DIR.
PATTERN is a glob (* ? **) matched against the name, or the relative path if it contains '/'.`,
  options: {
    dir: DIR_OPTION,
    json: JSON_OPTION,
    exclude: { type: "string", multiple: true, help: "skip names matching this glob" },
    "exclude-from": { type: "string", help: "read exclude patterns from FILE, one a line" },
    "exclude-vcs": { type: "boolean", help: "skip .git, .hg, .svn, .bzr, _darcs, CVS" },
  },
  positionals: ["LOCALDIR", "ALIAS:PATH"],
  async run(ctx) {
    if (ctx.positionals.length !== 2) {
      throw new UsageError("usage: shoal client backup --dir DIR LOCALDIR ALIAS:PATH");
    }
    const json = ctx.values.json === true;
    // --dir before the exclude file is read (withSession opens the session on it afterwards).
    requireString(ctx.values, "dir");
    const raw = ctx.values.exclude;
    const excludes = Array.isArray(raw) ? raw.map(String) : typeof raw === "string" ? [raw] : [];
    const from = ctx.values["exclude-from"];
    if (typeof from === "string") {
      try {
        excludes.push(...await readExcludeFile(from));
      } catch (e) {
        throw new CliError(`cannot read ${from}: ${(e as Error).message}`);
      }
    }
    const show = ctx.isTty && !json;
    // A quiet session (no per-file progress bars): backup draws its own progress line.
    const sum = await withSession(
      ctx,
      true,
      (session) =>
        backup(session, ctx.positionals[0], ctx.positionals[1], {
          excludes,
          excludeVcs: ctx.values["exclude-vcs"] === true,
          log: (l) => ctx.err(l),
          progress: show
            ? (p) =>
              Deno.stderr.writeSync(enc.encode(
                `\rbackup: ${p.files}/${p.totalFiles} files, ${(p.bytes / 1e6).toFixed(1)}/${
                  (p.totalBytes / 1e6).toFixed(1)
                } MB\x1b[K${p.done ? "\n" : ""}`,
              ))
            : undefined,
        }),
    );
    if (json) ctx.out(JSON.stringify(sum, null, 2));
    else for (const l of summaryLines(sum)) ctx.out(l);
    if (sum.skipped.length) {
      if (!json) ctx.err(`shoal: skipped ${sum.skipped.length} local entries (listed above)`);
      return EXIT_FAILURE;
    }
  },
};

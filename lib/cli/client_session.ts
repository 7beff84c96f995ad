/**
 * What every client file and tree command sets up before its work: a FileSession on --dir
 * whose errors become exit codes, and progress on stderr, shown only when stderr is a terminal
 * and the output is not JSON (docs/client-commands.md §1).
 */
import {
  FilesError,
  FileSession,
  objectProgress,
  progressBar,
  type SessionOptions,
} from "../roles/client/mod.ts";
import { CliError, type CommandContext, requireString, UsageError } from "./command.ts";

const enc = new TextEncoder();

/** Progress text goes to stderr at once (it redraws one line with "\r"). */
function toStderr(text: string): void {
  Deno.stderr.writeSync(enc.encode(text));
}

/** A terminal wants progress; JSON output, a pipe or a file does not. */
function showsProgress(ctx: CommandContext, quiet: boolean): boolean {
  return ctx.isTty && !quiet;
}

function sessionOptions(ctx: CommandContext, quiet: boolean): SessionOptions {
  return {
    log: (l) => ctx.err(l),
    progress: showsProgress(ctx, quiet)
      ? (label, total) => (total > 0 ? progressBar({ label, total, write: toStderr }) : undefined)
      : undefined,
  };
}

/** A counter of objects for a long walk ("walking: N object(s)"), or null when quiet. */
export function objectCounter(ctx: CommandContext, quiet: boolean) {
  return showsProgress(ctx, quiet) ? objectProgress(toStderr) : null;
}

/** Run `fn` with a session on --dir; FilesError becomes a usage error (2) or a failure (1). */
export async function withSession<T>(
  ctx: CommandContext,
  quiet: boolean,
  fn: (s: FileSession) => Promise<T>,
  extra: Partial<SessionOptions> = {},
): Promise<T> {
  const dir = requireString(ctx.values, "dir");
  let session: FileSession | null = null;
  try {
    session = await FileSession.open(dir, { ...sessionOptions(ctx, quiet), ...extra });
    return await fn(session);
  } catch (e) {
    if (e instanceof FilesError) {
      throw e.usage ? new UsageError(e.message) : new CliError(e.message);
    }
    throw e;
  } finally {
    session?.close();
  }
}

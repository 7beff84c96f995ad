/**
 * A small command framework over node:util parseArgs: groups of commands,
 * generated --help, and meaningful exit codes.
 *
 * Exit codes: 0 success; 1 the operation failed (message on stderr);
 * 2 usage error (unknown command, bad flag, missing argument).
 */
import { parseArgs } from "node:util";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the command was invoked: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The operation could not be done; `message` says what and what to do. Exit code 1 unless given. */
export class CliError extends Error {
  override name = "CliError";
  constructor(message: string, readonly exitCode = EXIT_FAILURE) {
    super(message);
  }
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Shown in --help. */
  help: string;
  /** Placeholder for the value in --help, e.g. "DIR". */
  value?: string;
  default?: string | boolean;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** Usage line after `shoal <group> <name>`, e.g. "--dir DIR [--json]". */
  usage: string;
  /** Longer description for --help. */
  description?: string;
  options: Record<string, OptionSpec>;
  /** Names of positional arguments: "NAME" required, "[NAME]" optional, "NAME..." many. */
  positionals?: string[];
  run(ctx: CommandContext): Promise<number | void>;
}

export interface CommandContext {
  values: Values;
  positionals: string[];
  /** Write a line to stdout. */
  out(line: string): void;
  /** Write a line to stderr (progress, notes). */
  err(line: string): void;
  /** Whether stderr is a terminal (for progress displays). */
  isTty: boolean;
}

export interface Group {
  name: string;
  summary: string;
  commands: Command[];
}

/** The common `--dir DIR` / `-d DIR` option. */
export const DIR_OPTION: OptionSpec = {
  type: "string",
  short: "d",
  value: "DIR",
  help: "node directory to act on",
};

export const JSON_OPTION: OptionSpec = { type: "boolean", help: "print machine-readable JSON" };

export function requireString(values: Values, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`missing required option --${name}`);
  return v;
}

export function optionalString(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

export function stringList(values: Values, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [String(v)];
}

/**
 * Options every command with arguments takes: --cap-file PATH reads a cap (from a file or
 * stdin) for an argument written CAP, so caps need not appear in argv.
 */
export function withCommonOptions(cmd: Command): Record<string, OptionSpec> {
  if (!cmd.positionals?.length || cmd.options["cap-file"]) return cmd.options;
  return {
    ...cmd.options,
    "cap-file": {
      type: "string",
      value: "PATH",
      help: "read a cap from PATH ('-': stdin); write CAP (or CAP/path) where the cap goes",
    },
  };
}

export function commandHelp(prefix: string, cmd: Command): string {
  const lines = [`Usage: ${prefix} ${cmd.name} ${cmd.usage}`.trimEnd(), "", cmd.summary];
  if (cmd.description) lines.push("", cmd.description.trim());
  const opts = Object.entries(withCommonOptions(cmd));
  if (opts.length) {
    lines.push("", "Options:");
    const rows = opts.map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${
        o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""
      }`;
      return [flag, o.help + (o.multiple ? " (repeatable)" : "")];
    });
    rows.push(["    --help", "show this help"]);
    const w = Math.max(...rows.map((r) => r[0].length));
    for (const [f, h] of rows) lines.push(`  ${f.padEnd(w)}  ${h}`);
  }
  return lines.join("\n");
}

export function groupHelp(prefix: string, group: Group): string {
  const w = Math.max(...group.commands.map((c) => c.name.length));
  return [
    `Usage: ${prefix} <command> [options]`,
    "",
    group.summary,
    "",
    "Commands:",
    ...group.commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    `Run '${prefix} <command> --help' for a command's options.`,
  ].join("\n");
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length];
}

/** Close names: a prefix either way, or within edit distance 2 (1 for short names). */
export function closeNames(word: string, names: string[]): string[] {
  const w = word.toLowerCase();
  return names.filter((n) => {
    const limit = Math.min(n.length >= 8 ? 3 : 2, Math.max(1, Math.floor(n.length / 3)));
    return distance(w, n) <= limit || (w.length >= 2 && n.startsWith(w)) ||
      (n.length >= 2 && w.startsWith(n) && w.length - n.length <= 2);
  });
}

/** Parse argv for one command; throws UsageError on bad flags or arguments. */
export function parseCommandArgs(
  cmd: Command,
  argv: string[],
  prefix = "shoal",
): { values: Values; positionals: string[]; help: boolean } {
  const where = `${prefix} ${cmd.name}`;
  const helpHint = `run '${where} --help' for its options`;
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean; default?: string | boolean }
  > = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, o] of Object.entries(withCommonOptions(cmd))) {
    const opt: (typeof options)[string] = { type: o.type };
    if (o.short !== undefined) opt.short = o.short;
    if (o.multiple !== undefined) opt.multiple = o.multiple;
    if (o.default !== undefined) opt.default = o.default;
    options[name] = opt;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional.*$/s, "");
    const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(msg);
    if (unknown) {
      const close = unknown[1] === "--"
        ? closeNames(unknown[2], Object.keys(withCommonOptions(cmd)))
        : [];
      throw new UsageError(
        `unknown option '${unknown[1]}${unknown[2]}' for '${where}'${
          close.length ? `; did you mean ${close.map((n) => `'--${n}'`).join(" or ")}?` : ""
        } (${helpHint})`,
      );
    }
    const missing = /^Option '([^']*)' argument missing/.exec(msg);
    if (missing) {
      throw new UsageError(
        `option ${missing[1].replace(/ <value>$/, "")} needs a value (${helpHint})`,
      );
    }
    throw new UsageError(`${msg} (${helpHint})`);
  }
  const values = parsed.values as Values;
  if (values.help) return { values, positionals: parsed.positionals, help: true };
  const specs = cmd.positionals ?? [];
  const required = specs.filter((p) => !p.startsWith("[") && !p.endsWith("...")).length;
  const variadic = specs.some((p) => p.endsWith("..."));
  if (parsed.positionals.length < required) {
    throw new UsageError(`missing argument ${specs[parsed.positionals.length]} (${helpHint})`);
  }
  if (!variadic && parsed.positionals.length > specs.length) {
    throw new UsageError(`too many arguments: expected at most ${specs.length} (${helpHint})`);
  }
  return { values, positionals: parsed.positionals, help: false };
}

/** Seconds since the epoch as an ISO 8601 UTC time. */
export function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

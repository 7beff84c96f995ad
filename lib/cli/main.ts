import {
  CliError,
  type Command,
  commandHelp,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  type Group,
  groupHelp,
  parseCommandArgs,
  UsageError,
} from "./command.ts";
import { GROUPS, TOP_COMMANDS } from "./registry.ts";

import { VERSION } from "../version.ts";
export { VERSION };

function topHelp(): string {
  const rows: [string, string][] = [
    ...GROUPS.map((g): [string, string] => [g.name, g.summary]),
    ...TOP_COMMANDS.map((c): [string, string] => [c.name, c.summary]),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    "Usage: shoal <role> <command> [options]",
    "",
    "Shoal: a capability-secure, erasure-coded storage grid with no introducer server.",
    "",
    "Roles and commands:",
    ...rows.map(([n, s]) => `  ${n.padEnd(w)}  ${s}`),
    "",
    "Options:",
    "  --help     show this help",
    "  --version  print the version",
    "",
    "Run 'shoal <role> --help' for a role's commands.",
  ].join("\n");
}

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  isTty: boolean;
}

const defaultIo: CliIo = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
  isTty: Deno.stderr.isTerminal(),
};

async function runCommand(
  prefix: string,
  cmd: Command,
  argv: string[],
  io: CliIo,
): Promise<number> {
  const { values, positionals, help } = parseCommandArgs(cmd, argv);
  if (help) {
    io.out(commandHelp(prefix, cmd));
    return EXIT_OK;
  }
  const code = await cmd.run({ values, positionals, out: io.out, err: io.err, isTty: io.isTty });
  return code ?? EXIT_OK;
}

/** Run the command line; returns the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      if (first === undefined) {
        io.err(topHelp());
        return EXIT_USAGE;
      }
      io.out(topHelp());
      return EXIT_OK;
    }
    if (first === "--version" || first === "-V") {
      io.out(`shoal ${VERSION}`);
      return EXIT_OK;
    }
    const top = TOP_COMMANDS.find((c) => c.name === first);
    if (top) return await runCommand("shoal", top, rest, io);
    const group: Group | undefined = GROUPS.find((g) => g.name === first);
    if (!group) throw new UsageError(`unknown command '${first}'; run 'shoal --help' for the list`);
    const [sub, ...args] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      (sub === undefined ? io.err : io.out)(groupHelp(`shoal ${group.name}`, group));
      return sub === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const cmd = group.commands.find((c) => c.name === sub);
    if (!cmd) {
      throw new UsageError(
        `unknown command '${group.name} ${sub}'; run 'shoal ${group.name} --help' for the list`,
      );
    }
    return await runCommand(`shoal ${group.name}`, cmd, args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`shoal: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof CliError) {
      io.err(`shoal: ${e.message}`);
      return e.exitCode;
    }
    io.err(`shoal: ${(e as Error)?.message ?? String(e)}`);
    if (Deno.env.get("SHOAL_DEBUG")) io.err(String((e as Error)?.stack));
    return EXIT_FAILURE;
  }
}

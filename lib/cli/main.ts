import {
  CliError,
  closeNames,
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
import { defaultNodeDir, detectDirKind, type NodeRole } from "../roles/nodefs.ts";
import { InputError } from "../roles/inputs.ts";
import { substituteCapFile } from "./secrets.ts";

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

/** Which role's node each group's commands act on; the creating commands make one. */
const GROUP_ROLE: Record<string, NodeRole> = {
  operator: "operator",
  storage: "storage",
  client: "client",
};
const CREATORS = new Set(["operator create", "storage create", "client create-node"]);
const ROLE_WORD: Record<NodeRole, string> = {
  operator: "an operator node",
  storage: "a storage node",
  client: "a client node",
};
const CREATE_HINT: Record<NodeRole, string> = {
  operator: "shoal operator create --dir DIR --storage URL",
  storage: "shoal storage create --dir DIR --listen HOST:PORT",
  client: "shoal client create-node --dir DIR --introducer-v3-file FILE",
};

/** Where the node directory came from when --dir was not given (for messages). */
let implicitDir: { dir: string; from: "SHOAL_DIR" | "default" } | null = null;

/** Refuse, writing nothing, when DIR is not a node of the role the command acts on. */
async function checkRole(group: string, cmd: Command, dir: string): Promise<void> {
  const role = GROUP_ROLE[group];
  if (!role) return;
  const k = await detectDirKind(dir);
  if (k.kind === "file") {
    throw new CliError(`${dir} is a file, not a node directory; give --dir a node's directory`);
  }
  if (CREATORS.has(`${group} ${cmd.name}`)) return;
  if (k.kind === "node" && k.role === role) return;
  const want = ROLE_WORD[role];
  if (k.kind === "node") throw new CliError(`${dir} is ${ROLE_WORD[k.role]}, not ${want}`);
  if (k.kind === "quickstart") {
    throw new CliError(
      `${dir} is a quickstart grid, not ${want}; its nodes are ${dir}/client, ${dir}/operator and ` +
        `${dir}/storage/s1 ... (e.g. --dir ${dir}/${role === "storage" ? "storage/s1" : role})`,
    );
  }
  throw new CliError(
    `${dir} holds no node${
      k.kind === "missing" ? " (it does not exist)" : ""
    }, so it is not ${want}; ` +
      `create one with '${CREATE_HINT[role]}'`,
  );
}

async function runCommand(
  prefix: string,
  cmd: Command,
  argv: string[],
  io: CliIo,
  group?: string,
): Promise<number> {
  const { values, positionals, help } = parseCommandArgs(cmd, argv, prefix);
  if (help) {
    io.out(commandHelp(prefix, cmd));
    return EXIT_OK;
  }
  if (group !== undefined && cmd.options.dir !== undefined) {
    if (values.dir === undefined) {
      implicitDir = defaultNodeDir();
      values.dir = implicitDir.dir;
    }
    if (typeof values.dir === "string" && values.dir !== "") {
      await checkRole(group, cmd, values.dir);
    }
  }
  const args = await substituteCapFile(values, positionals);
  const code = await cmd.run({
    values,
    positionals: args,
    out: io.out,
    err: io.err,
    isTty: io.isTty,
  });
  return code ?? EXIT_OK;
}

function didYouMean(candidates: string[]): string {
  if (!candidates.length) return "";
  return `; did you mean ${candidates.map((c) => `'${c}'`).join(" or ")}?`;
}

/** `shoal client --dir C ls`: options given before the command move after it. */
function hoistLeadingOptions(rest: string[]): string[] {
  const lead: string[] = [];
  let i = 0;
  while (i < rest.length && rest[i].startsWith("-") && rest[i] !== "-" && rest[i] !== "--") {
    const a = rest[i];
    if (a === "--help" || a === "-h") break;
    if ((a === "--dir" || a === "-d") && i + 1 < rest.length) {
      lead.push(a, rest[i + 1]);
      i += 2;
    } else if (a.startsWith("--dir=")) {
      lead.push(a);
      i += 1;
    } else {
      throw new UsageError(
        `'${a}' goes after the command: write 'shoal <role> <command> ${a} ...'; ` +
          "run 'shoal --help' for the list",
      );
    }
  }
  if (!lead.length) return rest;
  return [...rest.slice(i, i + 1), ...lead, ...rest.slice(i + 1)];
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
    if (first.startsWith("-")) {
      throw new UsageError(
        `unknown option '${first}'; options go after the command ('shoal client ls --dir DIR ...'); ` +
          "run 'shoal --help' for the list",
      );
    }
    const top = TOP_COMMANDS.find((c) => c.name === first);
    if (top) return await runCommand("shoal", top, rest, io);
    const group: Group | undefined = GROUPS.find((g) => g.name === first);
    if (!group) {
      const inGroups = GROUPS.filter((g) => g.commands.some((c) => c.name === first)).map((g) =>
        `shoal ${g.name} ${first}`
      );
      const close = inGroups.length ? inGroups : closeNames(first, [
        ...GROUPS.map((g) => g.name),
        ...TOP_COMMANDS.map((c) => c.name),
      ]).map((n) => `shoal ${n}`);
      throw new UsageError(
        `unknown command '${first}'${didYouMean(close)} (run 'shoal --help' for the list)`,
      );
    }
    const [sub, ...args] = hoistLeadingOptions(rest);
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      (sub === undefined ? io.err : io.out)(groupHelp(`shoal ${group.name}`, group));
      return sub === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const cmd = group.commands.find((c) => c.name === sub);
    if (!cmd) {
      const close = closeNames(sub, group.commands.map((c) => c.name)).map((n) =>
        `shoal ${group.name} ${n}`
      );
      const elsewhere = GROUPS.filter((g) => g !== group && g.commands.some((c) => c.name === sub))
        .map((g) => `shoal ${g.name} ${sub}`);
      throw new UsageError(
        `unknown command '${group.name} ${sub}'${
          didYouMean([...close, ...elsewhere])
        } (run 'shoal ${group.name} --help' for the list)`,
      );
    }
    return await runCommand(`shoal ${group.name}`, cmd, args, io, group.name);
  } catch (e) {
    const note = () => {
      if (implicitDir) {
        io.err(
          `shoal: (node directory ${implicitDir.dir}, ${
            implicitDir.from === "SHOAL_DIR" ? "from $SHOAL_DIR" : "the default"
          }: give --dir DIR or set SHOAL_DIR to use another)`,
        );
      }
    };
    if (e instanceof UsageError || e instanceof InputError) {
      io.err(`shoal: ${e.message}`);
      note();
      return EXIT_USAGE;
    }
    if (e instanceof CliError) {
      io.err(`shoal: ${e.message}`);
      note();
      return e.exitCode;
    }
    const msg = (e as Error)?.message ?? String(e);
    const none = /no valid share of this object on the 0 reachable of (\d+) servers asked/.exec(
      msg,
    );
    io.err(
      none
        ? `shoal: no storage server is reachable: none of the ${
          none[1]
        } server(s) asked answered; ` +
          "check that they are running ('shoal storage run') and that this computer can reach them"
        : `shoal: ${msg}`,
    );
    note();
    if (Deno.env.get("SHOAL_DEBUG")) io.err(String((e as Error)?.stack));
    return EXIT_FAILURE;
  } finally {
    implicitDir = null;
  }
}

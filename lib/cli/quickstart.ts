import {
  DEFAULT_QUICKSTART_SERVERS,
  defaultQuickstartDir,
  runQuickstart,
} from "../roles/quickstart.ts";
import { type Command, DIR_OPTION, optionalString, UsageError } from "./command.ts";
import { RUN_FLAGS } from "../version.ts";

/** How to invoke this same program from a shell, for the commands we suggest. */
export function selfCommand(): string {
  const main = Deno.mainModule;
  if (main.startsWith("file://") && /\.(ts|js)$/.test(main)) {
    // The full path of this deno: it works whether or not `deno` is on PATH (e.g. run via npx).
    const deno = Deno.execPath();
    const onPath = (Deno.env.get("PATH") ?? "").split(":").some((d) => d && `${d}/deno` === deno);
    return `${onPath ? "deno" : deno} run ${RUN_FLAGS.join(" ")} ${new URL(main).pathname}`;
  }
  return Deno.execPath();
}

export const quickstartCommand: Command = {
  name: "quickstart",
  summary: "start a complete local grid on loopback (servers, operator, client) in the foreground",
  usage: "[--dir DIR] [--servers N]",
  description: `
The first run creates N storage servers (default ${DEFAULT_QUICKSTART_SERVERS}), an operator with a
grid service directory announcing every server, and a client node, all under DIR (default
~/.shoal-quickstart). Later runs reuse the same grid and data. Prints the introduction text, the
client's dashboard address and commands to try, then runs until Ctrl-C.`,
  options: {
    dir: { ...DIR_OPTION, help: "where the grid lives (default ~/.shoal-quickstart)" },
    servers: {
      type: "string",
      value: "N",
      help: `storage servers on the first run (default ${DEFAULT_QUICKSTART_SERVERS})`,
    },
  },
  async run({ values, out, err }) {
    const dir = optionalString(values, "dir") ?? defaultQuickstartDir();
    const n = Number(optionalString(values, "servers") ?? DEFAULT_QUICKSTART_SERVERS);
    if (!Number.isInteger(n) || n < 1 || n > 64) {
      throw new UsageError("--servers must be an integer from 1 to 64");
    }
    const ac = new AbortController();
    const stop = () => ac.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    const self = selfCommand();
    try {
      await runQuickstart({
        dir,
        servers: n,
        signal: ac.signal,
        log: err,
        onReady(info) {
          out(
            `${
              info.created ? "Created" : "Reopened"
            } a local grid of ${info.servers.length} storage servers in ${info.dir}`,
          );
          out("");
          out("Introduction text (give it to clients: it grants use of the grid):");
          out(info.introductionText);
          out("");
          out(
            info.dashboardUrl
              ? `Dashboard: ${info.dashboardUrl}`
              : `Dashboard: not available (${info.dashboardProblem})`,
          );
          out("");
          out("Try, in another terminal:");
          out(`  ${self} client servers --dir ${info.clientDir}`);
          out(`  echo hello | ${self} client put --dir ${info.clientDir} -`);
          out(`  ${self} client get --dir ${info.clientDir} CAP   (the cap printed by put)`);
          out("");
          out("Press Ctrl-C to stop the grid.");
        },
      });
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    }
    err("quickstart grid stopped");
  },
};

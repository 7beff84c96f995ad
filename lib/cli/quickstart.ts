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

/**
 * The short way to run `shoal` that we suggest: `deno task shoal` from the checkout (with
 * `npx --yes deno@VERSION` when deno is not on PATH), or this binary when compiled.
 */
export function suggestedShoal(): { shoal: string; checkout: string | null } {
  const main = Deno.mainModule;
  if (main.startsWith("file://") && /\/main\.(ts|js)$/.test(main)) {
    const checkout = new URL(".", main).pathname.replace(/\/$/, "");
    const deno = Deno.execPath();
    const onPath = (Deno.env.get("PATH") ?? "").split(":").some((d) => d && `${d}/deno` === deno);
    const denoCmd = onPath ? "deno" : `npx --yes deno@${Deno.version.deno}`;
    return { shoal: `${denoCmd} task shoal`, checkout };
  }
  return { shoal: selfCommand(), checkout: null };
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
          const { shoal, checkout } = suggestedShoal();
          out(`Try, in another terminal${checkout ? ` in ${checkout}` : ""}:`);
          out(`  export SHOAL_DIR=${info.clientDir}`);
          out(`  ${shoal} client servers`);
          out(`  ${shoal} client alias create home`);
          out(`  ${shoal} client mkdir home:docs`);
          out(`  echo hello | ${shoal} client put - home:docs/hello.txt`);
          out(`  ${shoal} client ls -l home:docs`);
          out(`  ${shoal} client get home:docs/hello.txt`);
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

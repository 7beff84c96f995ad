/** The `shoal` command line: groups, dispatch, help and exit codes. */
export * from "./command.ts";
export { runCli, VERSION } from "./main.ts";

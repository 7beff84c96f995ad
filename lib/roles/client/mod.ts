/** The client role. */
export * from "./node.ts";
export * from "./files.ts";
export * from "./aliases.ts";
export {
  ALIAS_NAME_RE,
  displayPath,
  type GridPath,
  looksLikeGridPath,
  parseGridPath,
  validateAliasName,
} from "./paths.ts";
export { fmtBytes, type Progress, progressBar } from "./progress.ts";
export * from "./leases.ts";
export * from "./uploads.ts";
export * from "./walk.ts";
export * from "./deepcheck.ts";
export * from "./trees.ts";
export * from "./probe.ts";

/**
 * The one file-system API under every frontend (docs/fs-api.md): paths under a root cap.
 * It sits on lib/grid; the role layer opens the grid and hands it in through FsContext.
 */
export * from "./errors.ts";
export * from "./paths.ts";
export * from "./spool.ts";
export * from "./fs.ts";

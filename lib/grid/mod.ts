/** The grid layer: server list and placement, mutable files, directories. */
export * from "./errors.ts";
export * from "./servers.ts";
export * from "./mutable_share.ts";
export * from "./mutable.ts";
export * from "./dirnode.ts";
export { Grid, type GridOptions } from "./grid.ts";
export { GRID_TAGS } from "./tags.ts";

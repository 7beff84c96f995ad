/** Discovery: introduction texts, the GSD and GSAs, joining and refreshing. */
export * from "./introduction.ts";
export * from "./gsa.ts";
export * from "./gsd.ts";
export * from "./pool.ts";
export * from "./refresh.ts";

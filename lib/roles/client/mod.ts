/** The client role. */
export * from "./node.ts";

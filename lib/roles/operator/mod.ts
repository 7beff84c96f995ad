/** The operator role. */
export * from "./operator.ts";

import type { Command } from "./command.ts";

/** The client's file commands (put, get, ls, mkdir, ...). */
export const fileCommands: Command[] = [];

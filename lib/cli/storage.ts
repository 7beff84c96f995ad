import type { Command } from "./command.ts";

export const storageCommands: Command[] = [];

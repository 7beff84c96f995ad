import type { Command } from "./command.ts";

export const operatorCommands: Command[] = [];

import type { Command } from "./command.ts";

export const clientCommands: Command[] = [];

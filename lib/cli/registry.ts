/** Every command group of `shoal`. Each role's commands live in lib/cli/<role>.ts. */
import type { Command, Group } from "./command.ts";
import { operatorCommands } from "./operator.ts";
import { storageCommands } from "./storage.ts";
import { clientCommands } from "./client.ts";
import { quickstartCommand } from "./quickstart.ts";

export const GROUPS: Group[] = [
  {
    name: "operator",
    summary: "create and maintain a grid's service directory (GSD)",
    commands: operatorCommands,
  },
  {
    name: "storage",
    summary: "run a storage server and announce it to the grid",
    commands: storageCommands,
  },
  {
    name: "client",
    summary: "join a grid from an introduction text and use it",
    commands: clientCommands,
  },
];

export const TOP_COMMANDS: Command[] = [quickstartCommand];

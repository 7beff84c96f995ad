/**
 * `deno task lab`: Shoal on many hosts on this machine (docs/lab.md). Needs root (network
 * namespaces).
 *
 *   deno task lab list                  the scenarios
 *   deno task lab SCENARIO... [-v] [--reject] [--bound MS]
 *                                       build a grid, run the scenarios on it in order, tear
 *                                       down; --reject: partitions refuse instead of black-holing;
 *                                       --bound: the longest a command may take (default 45000)
 *   deno task lab all [-v]              every scenario
 *   deno task lab up [--servers N] [--clients M] [--rtt MS] [--mbit R]
 *                                       build a grid and keep it until Ctrl-C, printing how to
 *                                       run commands on its hosts by hand
 *   deno task lab cleanup               remove every lab namespace (and its processes) left behind
 */
import { parseArgs } from "node:util";
import { LabGrid } from "./lab/grid.ts";
import { cleanupLeftovers, labUnavailable } from "./lab/netns.ts";
import { runScenarios, scenarios } from "./lab/scenarios.ts";
import { RUN_FLAGS } from "../lib/version.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    verbose: { type: "boolean", short: "v" },
    servers: { type: "string", default: "5" },
    clients: { type: "string", default: "2" },
    rtt: { type: "string", default: "10" },
    mbit: { type: "string" },
    bound: { type: "string", default: "45000" },
    reject: { type: "boolean" },
  },
});
const cmd = positionals[0] ?? "list";

if (cmd === "list") {
  for (const s of scenarios) console.log(`${s.name.padEnd(20)} ${s.summary}`);
  Deno.exit(0);
}
const why = await labUnavailable();
if (why) {
  console.error(`lab: cannot run here: ${why}`);
  Deno.exit(1);
}
if (cmd === "cleanup") {
  const gone = await cleanupLeftovers(true);
  console.log(gone.length ? `removed ${gone.join(" ")}` : "nothing to remove");
  Deno.exit(0);
}
if (cmd === "up") {
  const g = await LabGrid.start({
    servers: Number(values.servers),
    clients: Number(values.clients),
    delayMs: Number(values.rtt) / 2,
    rateMbit: values.mbit ? Number(values.mbit) : null,
    refreshInterval: 5,
    shares: { k: 2, n: 4, happy: 3 },
    verbose: values.verbose,
  });
  const shoal = `${Deno.execPath()} run ${RUN_FLAGS.join(" ")} ${
    new URL("../main.ts", import.meta.url).pathname
  }`;
  console.log(`grid up under ${g.root}; hosts (namespaces):`);
  for (const h of g.lab.hosts.values()) {
    console.log(`  ${h.name.padEnd(4)} ${h.address.padEnd(14)} ${h.ns}`);
  }
  console.log(
    `\nfor example:\n  ip netns exec ${g.lab.host("c0").ns} ${shoal} client servers --dir ${
      g.clients[0].dir
    }`,
  );
  console.log(`\nCtrl-C tears everything down.`);
  await new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => resolve());
    Deno.addSignalListener("SIGTERM", () => resolve());
  });
  await g.close();
  Deno.exit(0);
}
const wanted = cmd === "all" ? scenarios : positionals.map((n) => {
  const s = scenarios.find((x) => x.name === n);
  if (!s) {
    console.error(`lab: no scenario ${n} (deno task lab list)`);
    Deno.exit(2);
  }
  return s;
});
const results = await runScenarios(wanted, {
  verbose: values.verbose,
  boundMs: Number(values.bound),
  mode: values.reject ? "reject" : "blackhole",
});
const failed = results.filter((r) => r).length;
console.log(`${wanted.length - failed} passed, ${failed} failed`);
Deno.exit(failed ? 1 : 0);

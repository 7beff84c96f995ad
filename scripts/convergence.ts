/**
 * The long randomized convergence run (issue #13; the test suite runs a short one):
 *
 *   deno run -A scripts/convergence.ts [--seed N] [--servers 10] [--steps 60] [--runs 1]
 *
 * Each run is a seeded random sequence of commissions, removals, stops and SIGKILLs,
 * restarts, address changes and client restarts against real `shoal` processes; it ends
 * when every node lists the model's servers, or fails naming the seed to replay.
 */
import { parseArgs } from "node:util";
import { runConvergence } from "../tests/discovery/convergence_model.ts";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    servers: { type: "string", default: "10" },
    steps: { type: "string", default: "60" },
    runs: { type: "string", default: "1" },
  },
});
const runs = Number(values.runs);
let failed = 0;
for (let i = 0; i < runs; i++) {
  const seed = values.seed !== undefined
    ? Number(values.seed) + i
    : Math.floor(Math.random() * 2 ** 31);
  try {
    const r = await runConvergence({
      seed,
      servers: Number(values.servers),
      steps: Number(values.steps),
      log: console.log,
    });
    console.log(
      `seed ${seed}: converged (${r.operations.length} operations): servers held every GSA after ` +
        `${r.serversHoldEveryGsaMs} ms, servers listed every server after ${r.serversListEveryServerMs} ms, ` +
        `clients after ${r.clientsListEveryServerMs} ms`,
    );
  } catch (e) {
    failed++;
    console.error((e as Error).message);
  }
}
if (failed) {
  console.error(`${failed} of ${runs} run(s) failed`);
  Deno.exit(1);
}

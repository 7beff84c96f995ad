/**
 * A short seeded random sequence of joins, removals, outages (SIGTERM and SIGKILL), address
 * changes and client restarts on 6 servers converges on every node within the documented
 * bound (issue #13). The long run: `deno run -A scripts/convergence.ts`. A failure prints the
 * seed; set SHOAL_CONVERGENCE_SEED to replay it.
 */
import { runConvergence } from "./convergence_model.ts";
import { testOpts } from "./discovery_helpers.ts";

Deno.test(
  "#13: a random sequence of joins, removals and outages converges everywhere",
  testOpts,
  async () => {
    const env = Deno.env.get("SHOAL_CONVERGENCE_SEED");
    const seed = env ? Number(env) : Math.floor(Math.random() * 2 ** 31);
    console.log(`convergence seed ${seed}`);
    const r = await runConvergence({ seed, servers: 6, steps: 6, log: console.log });
    console.log(
      `converged: servers held every GSA after ${r.serversHoldEveryGsaMs} ms, listed every ` +
        `server after ${r.serversListEveryServerMs} ms, clients after ${r.clientsListEveryServerMs} ms`,
    );
  },
);

/**
 * The network lab's scenarios (scripts/lab/scenarios.ts, docs/lab.md) on a real grid of network
 * namespaces: 5 storage server hosts, an operator host and 2 client hosts, each running `shoal`
 * through its command line. They need root and `ip netns`; elsewhere they are skipped, saying so.
 *
 * They run with black-hole partitions and a vanishing host whose link goes down (nothing answers,
 * the realistic case): every command must succeed, or fail with a clear error, within 45 s, so no
 * silent server sets the pace. Partitions that refuse instead (as when a router answers
 * "unreachable") are quicker and are run by hand with `deno task lab all --reject`.
 */
import { labUnavailable } from "../../scripts/lab/netns.ts";
import { runScenarios, scenarios } from "../../scripts/lab/scenarios.ts";
import { assert } from "../helpers/assert.ts";

const why = await labUnavailable();
if (why) console.error(`tests/lab: skipped: ${why}`);

const opts = { sanitizeOps: false, sanitizeResources: false, ignore: why !== null };

Deno.test({
  name: `lab: ${
    scenarios.map((s) => s.name).join(", ")
  } (black-hole partitions, each command within 45 s)`,
  ...opts,
  async fn() {
    const results = await runScenarios(scenarios, { mode: "blackhole", boundMs: 45_000 });
    const failed = results.map((r, i) => r && `${scenarios[i].name}: ${r.message}`).filter(Boolean);
    assert(failed.length === 0, failed.join("\n"));
  },
});

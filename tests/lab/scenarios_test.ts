/**
 * The network lab's scenarios (scripts/lab/scenarios.ts, docs/lab.md) on a real grid of network
 * namespaces: 5 storage server hosts, an operator host and 2 client hosts, each running `shoal`
 * through its command line. They need root and `ip netns`; elsewhere they are skipped, saying so.
 *
 * The first test runs every scenario with partitions that refuse (as when a router answers
 * "unreachable"), so every failure is quick and each command must finish within 45 s. The second
 * runs them with black-hole partitions and a vanishing host whose link goes down (nothing answers,
 * the realistic case) under the same bound; it is ignored until the client stops waiting out a
 * silent server's full timeouts one after another (the known bug "a slow or unreachable server
 * stalls operations", being fixed in lib/ by another slice). Measured with it on: an isolated
 * client's `get` failed after 52 s and its `put` after 72 s, and a put on the healthy side took
 * 24 s while its share for the cut-off server timed out.
 */
import { labUnavailable } from "../../scripts/lab/netns.ts";
import { runScenarios, scenarios } from "../../scripts/lab/scenarios.ts";
import { assert } from "../helpers/assert.ts";

const why = await labUnavailable();
if (why) console.error(`tests/lab: skipped: ${why}`);

const opts = { sanitizeOps: false, sanitizeResources: false, ignore: why !== null };

Deno.test({
  name: `lab: ${scenarios.map((s) => s.name).join(", ")} (refusing partitions)`,
  ...opts,
  async fn() {
    const results = await runScenarios(scenarios, { mode: "reject", boundMs: 45_000 });
    const failed = results.map((r, i) => r && `${scenarios[i].name}: ${r.message}`).filter(Boolean);
    assert(failed.length === 0, failed.join("\n"));
  },
});

Deno.test({
  name: "lab: the same scenarios with black-hole partitions, each command within 45 s",
  ...opts,
  // Known bug: a slow or unreachable server stalls client operations (waits out 10 s connect and
  // 30 s request timeouts per silent server instead of proceeding with those that answered).
  ignore: true,
  async fn() {
    const results = await runScenarios(scenarios, { mode: "blackhole", boundMs: 45_000 });
    const failed = results.map((r, i) => r && `${scenarios[i].name}: ${r.message}`).filter(Boolean);
    assert(failed.length === 0, failed.join("\n"));
  },
});

/**
 * Metrics (docs/metrics.md) against a real grid: a storage server with
 * `[metrics] listen` serves /metrics over plain HTTP, the client's gateway
 * serves its own behind the token; Debian's promtool accepts both, the
 * counters move when a file goes up and comes back, and no secret, cap or
 * storage index appears in either.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { ensureTool } from "../helpers/debian.ts";
import { setConfig } from "../helpers/joined_grid.ts";
import { freePort, runShoal, startStorageServer } from "../helpers/storage_process.ts";
import { Registry } from "../../lib/metrics/registry.ts";
import { startGatewayGrid, waitFor } from "../web/web_helpers.ts";

async function promtool(text: string): Promise<void> {
  const bin = await ensureTool("promtool", "prometheus");
  const child = new Deno.Command(bin, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  const msg = dec.decode(out.stdout) + dec.decode(out.stderr);
  assert(out.success, `promtool check metrics failed:\n${msg}\n--- input ---\n${text}`);
  assertEquals(msg.trim(), "", `promtool has lint complaints:\n${msg}`);
}

/** The value of one sample line `name{labels} value` (labels matched as a substring). */
function sample(text: string, name: string, labels = ""): number {
  let total = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name || !(m[2] ?? "").includes(labels)) continue;
    total += Number(m[3]);
    found = true;
  }
  return found ? total : NaN;
}

Deno.test("metrics registry: every type passes promtool, both formats", async () => {
  const r = new Registry();
  const c = r.counter("demo_requests", "Requests", ["route", "status"]);
  c.inc({ route: "a", status: "200" });
  c.inc({ route: 'we"ird\\', status: "500" }, 3);
  r.gauge("demo_free_bytes", "Free").set(undefined, 42);
  r.gauge("demo_collected", "Collected", ["kind"]).collect(() => [[{ kind: "x" }, 1.5]]);
  const h = r.histogram("demo_duration_seconds", "Latency", ["route"]);
  h.observe({ route: "a" }, 0.003);
  h.observe({ route: "a" }, 7);
  const text = await r.expose();
  await promtool(text);
  assertEquals(sample(text, "demo_requests_total", 'route="a"'), 1);
  assertEquals(sample(text, "demo_duration_seconds_count"), 2);
  assertEquals(sample(text, "demo_duration_seconds_bucket", 'le="0.005"'), 1);
  const om = await r.expose(true);
  assert(om.endsWith("# EOF\n"));
  assert(om.includes("# TYPE demo_requests counter\n"));
});

Deno.test("storage create --metrics-listen writes [metrics] listen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-metrics-create-" });
  try {
    const r = await runShoal([
      "storage",
      "create",
      "--dir",
      `${dir}/s`,
      "--listen",
      "127.0.0.1:7999",
      "--metrics-listen",
      "127.0.0.1:9464",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const toml = await Deno.readTextFile(`${dir}/s/shoal.toml`);
    assert(/\[metrics\][^[]*\nlisten = "127\.0\.0\.1:9464"/.test(toml), toml);
    const bad = await runShoal([
      "storage",
      "create",
      "--dir",
      `${dir}/t`,
      "--listen",
      "127.0.0.1:7998",
      "--metrics-listen",
      "nope",
    ]);
    assert(bad.code !== 0 && bad.stderr.includes("--metrics-listen"), bad.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "metrics on a real grid: storage /metrics and the gateway's, counters move",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const gg = await startGatewayGrid({ servers: 3, shares: { k: 2, n: 3, happy: 2 } });
    try {
      // s0 restarts with [metrics] listen on a free port.
      const s0 = gg.g.servers[0];
      await s0.proc!.stop();
      await setConfig(s0.node.dir, "metrics", "listen", `127.0.0.1:${await freePort()}`);
      s0.proc = await startStorageServer(s0.node.dir);
      let metricsUrl = "";
      await waitFor("the metrics line on stderr", () => {
        const m = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(s0.proc!.stderr());
        if (m) metricsUrl = m[1];
        return m !== null;
      });
      const scrape = async () => {
        const r = await fetch(metricsUrl);
        assertEquals(r.status, 200);
        assert(r.headers.get("content-type")!.startsWith("text/plain; version=0.0.4"));
        return await r.text();
      };
      const swissnum = (await Deno.readTextFile(`${s0.node.dir}/private/swissnum`)).trim();
      const auth = { authorization: `Bearer ${gg.token}` };

      const before = await scrape();
      await t.step("storage /metrics passes promtool and lists the store", async () => {
        await promtool(before);
        for (
          const name of [
            "shoal_storage_available_bytes",
            "shoal_storage_leases",
            "shoal_storage_open_connections",
            "shoal_storage_gc_runs_total",
          ]
        ) assert(before.includes(`# TYPE ${name} `), `${name} is listed`);
        assert(sample(before, "shoal_storage_available_bytes") > 0);
        assert(sample(before, "shoal_storage_shares", 'kind="mutable"') >= 1, "GSD/GSA shares");
        const other = await fetch(metricsUrl.replace("/metrics", "/other"));
        assertEquals(other.status, 404);
        await other.body?.cancel();
      });

      const data = new Uint8Array(200_000);
      crypto.getRandomValues(data.subarray(0, 65536));
      let cap = "";
      await t.step("an upload and a download through the gateway move the counters", async () => {
        const put = await fetch(`${gg.base}/uri`, { method: "PUT", body: data, headers: auth });
        cap = (await put.text()).trim();
        assertEquals(put.status, 201, cap);
        const get = await fetch(`${gg.base}/uri/${encodeURIComponent(cap)}`);
        assertEquals(new Uint8Array(await get.arrayBuffer()), data);
        let after = "";
        await waitFor("storage counters after the upload", async () => {
          after = await scrape();
          return sample(after, "shoal_storage_shares", 'kind="immutable"') >= 1;
        });
        await promtool(after);
        const sum = (txt: string, name: string, l: string) => sample(txt, name, l) || 0;
        assert(
          sum(after, "shoal_storage_requests_total", 'route="immutable_share",status="201"') >
            sum(before, "shoal_storage_requests_total", 'route="immutable_share",status="201"'),
          "share uploads counted",
        );
        assert(
          sum(after, "shoal_storage_received_bytes_total", 'route="immutable_share"') >=
            data.length / 2,
          "bytes in counted",
        );
        assert(
          sum(after, "shoal_storage_sent_bytes_total", "") >
            sum(before, "shoal_storage_sent_bytes_total", ""),
          "bytes out counted",
        );
        assert(
          sum(
            after,
            "shoal_storage_request_duration_seconds_count",
            'route="immutable_allocate"',
          ) >=
            1,
        );
        assert(sample(after, "shoal_storage_stored_bytes", 'kind="immutable"') > 0);
        assert(sample(after, "shoal_storage_leases") > sample(before, "shoal_storage_leases"));
        assert(sample(after, "shoal_storage_open_connections") >= 0);
        for (const secret of [swissnum, cap, cap.split(":").slice(2).join(":")]) {
          assert(!after.includes(secret), "no secret or cap in the metrics");
        }
        assert(!/[a-z2-7]{26}/.test(after), "no storage index in the metrics");
      });

      await t.step("the gateway's /metrics needs the token and passes promtool", async () => {
        const anon = await fetch(`${gg.base}/metrics`);
        assertEquals(anon.status, 401);
        await anon.body?.cancel();
        let text = "";
        await waitFor("servers reachable in the client's metrics", async () => {
          const r = await fetch(`${gg.base}/metrics`, { headers: auth });
          assertEquals(r.status, 200);
          text = await r.text();
          return sample(text, "shoal_client_servers_reachable") === 3;
        });
        await promtool(text);
        assertEquals(sample(text, "shoal_client_servers_known"), 3);
        assert(sample(text, "shoal_client_uploaded_bytes_total") >= data.length);
        assert(sample(text, "shoal_client_downloaded_bytes_total") >= data.length);
        assert(sample(text, "shoal_client_refreshes_total") >= 1, "refreshes counted");
        assert(
          sample(text, "shoal_client_gateway_requests_total", 'route="uri",status="201"') >= 1,
        );
        assert(sample(text, "shoal_client_gsd_expiry_seconds") > 0);
        assert(!text.includes(cap) && !text.includes(gg.token), "no cap or token");
        const om = await fetch(`${gg.base}/metrics`, {
          headers: { ...auth, accept: "application/openmetrics-text; version=1.0.0" },
        });
        assert(om.headers.get("content-type")!.startsWith("application/openmetrics-text"));
        assert((await om.text()).endsWith("# EOF\n"));
      });

      await t.step("a server going down shows in the client's reachable count", async () => {
        await gg.g.servers[2].proc!.stop();
        gg.g.servers[2].proc = null;
        await waitFor("2 reachable", async () => {
          const r = await fetch(`${gg.base}/metrics`, { headers: auth });
          return sample(await r.text(), "shoal_client_servers_reachable") === 2;
        }, 30_000);
      });
    } finally {
      await gg.close();
    }
  },
});

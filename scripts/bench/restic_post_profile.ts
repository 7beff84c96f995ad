/**
 * A quick profile of restic's upload path into Shoal (not a bench section): per-request latency of
 * POST /data/<id> through `shoal client serve restic`, for small and pack-sized bodies, beside the
 * same bytes stored by `shoal client put` in one process. Run:
 * `deno run -A scripts/bench/restic_post_profile.ts [COUNT] [SIZE_BYTES]`.
 */
import { startJoinedGrid } from "../../tests/helpers/joined_grid.ts";
import { basic, startServe } from "../../tests/helpers/serve.ts";

const count = Number(Deno.args[0] ?? 10);
const size = Number(Deno.args[1] ?? 1_000_000);
const g = await startJoinedGrid({
  servers: 5,
  refreshInterval: 3600,
  shares: { k: 3, n: 5, happy: 3 },
});
try {
  await g.shoal(["client", "alias", "create", "--dir", g.clientDir, "bk"]);
  const srv = await startServe(["restic", "--dir", g.clientDir, "--path", "bk:repo"]);
  try {
    const a = basic(srv.user, srv.password);
    const r0 = await fetch(`${srv.base}?create=true`, { method: "POST", headers: a });
    await r0.body?.cancel();
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const body = new Uint8Array(size);
      crypto.getRandomValues(body.subarray(0, 65536));
      body[65536 % size] = i;
      const hash = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", body)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      const t0 = performance.now();
      const r = await fetch(`${srv.base}data/${hash}`, { method: "POST", headers: a, body });
      await r.body?.cancel();
      times.push(performance.now() - t0);
      if (r.status !== 200) throw new Error(`POST ${r.status}`);
    }
    times.sort((x, y) => x - y);
    console.log(
      `POST /data ${count} x ${size} B sequential: median ${
        times[times.length >> 1].toFixed(0)
      } ms, ` +
        `min ${times[0].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms`,
    );
  } finally {
    await srv.stop();
  }
  const f = await Deno.makeTempFile();
  const body = new Uint8Array(size);
  crypto.getRandomValues(body.subarray(0, 65536));
  await Deno.writeFile(f, body);
  const t0 = performance.now();
  await g.shoal(["client", "put", "--dir", g.clientDir, f, "bk:one"]);
  console.log(
    `shoal client put of ${size} B (process spawn included): ${
      (performance.now() - t0).toFixed(0)
    } ms`,
  );
  await Deno.remove(f);
} finally {
  await g.close();
}

/**
 * The operator's dashboard (`shoal operator run --web-port 0`): status only,
 * token required, and it names the servers that lack the newest GSD.
 */
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { startShoal } from "../helpers/process.ts";
import { startStorageServer } from "../helpers/storage_process.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { waitFor } from "./web_helpers.ts";

interface Status {
  role: string;
  gsd: { seqnum: number; holders: string[]; lacking: string[] } | null;
  servers: {
    nickname: string;
    serverId: string;
    reachable: boolean | null;
    gsdSeqnum: number | null;
  }[];
}

Deno.test("operator dashboard: which servers lack the newest GSD", async (t) => {
  const g = await startJoinedGrid({ servers: 4, refreshInterval: 1 });
  const op = await startShoal([
    "operator",
    "run",
    "--dir",
    g.opDir,
    "--web-port",
    "0",
    "--web-refresh",
    "1",
    "--show-secrets",
  ]);
  try {
    let m: RegExpExecArray | null = null;
    await waitFor("the operator dashboard URL", () => {
      m = /dashboard: (http:\/\/127\.0\.0\.1:(\d+))\/\?token=([A-Za-z0-9]+)/.exec(op.stderr());
      return m !== null;
    });
    const [, base, , token] = m!;
    const auth = { authorization: `Bearer ${token}` };
    const status = async (): Promise<Status> => {
      const r = await fetch(`${base}/api/status`, { headers: auth });
      assertEquals(r.status, 200);
      return await r.json();
    };

    await t.step("token required; no file API; every server holds the newest GSD", async () => {
      const no = await fetch(`${base}/api/status`);
      await no.body?.cancel();
      assertEquals(no.status, 401);
      const files = await fetch(`${base}/uri?t=mkdir`, { method: "POST", headers: auth });
      assertEquals(files.status, 404);
      assert((await files.text()).includes("serves no files"));
      assertEquals((await Deno.stat(`${g.opDir}/private/api-token`)).mode! & 0o777, 0o600);
      await waitFor("all four hold the newest GSD", async () => {
        const s = await status();
        return s.role === "operator" && s.servers.length === 4 && s.gsd!.holders.length === 4 &&
          s.gsd!.lacking.length === 0;
      });
    });

    await t.step("a server that missed a GSD update is listed as lacking it", async () => {
      const s3 = g.servers[3];
      const before = (await status()).gsd!.seqnum;
      await s3.proc!.stop();
      s3.proc = null;
      await g.shoal(["operator", "remove-announcement", "--dir", g.opDir, "s1"]);
      s3.proc = await startStorageServer(s3.node.dir);
      const id3 = (await status()).servers.find((s) => s.nickname === "s3")!.serverId;
      await waitFor("s3 listed as lacking the newest GSD, s1 gone", async () => {
        const s = await status();
        return s.gsd!.seqnum > before && s.servers.length === 3 && s.gsd!.lacking.length === 1 &&
          s.gsd!.lacking[0] === id3 && s.gsd!.holders.length === 2 &&
          s.servers.some((x) => x.serverId === id3 && x.reachable === true);
      });
      const s = await status();
      const row = s.servers.find((x) => x.serverId === id3)!;
      assertEquals(row.reachable, true);
      assert(row.gsdSeqnum !== null && row.gsdSeqnum < s.gsd!.seqnum);
    });

    await t.step("SIGTERM stops the dashboard", async () => {
      assertEquals(await op.stop(), 0);
      assert(await fetch(`${base}/`).then(() => false, () => true));
    });
  } finally {
    await op.stop();
    await g.close();
  }
});

/**
 * A POST with Content-Length streams its body into a random-key upload without a spool file
 * (lib/fs/oneshot.ts), so the upload must not need to start over when a storage server is down.
 * It used to: the down server's failed allocation, answered first, marked the upload as failed
 * before its shares were moved to the other servers (lib/grid/immutable.ts), so every such upload
 * restarted, read its source again, and the POST failed with 502.
 */
import { assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { loadClientNode } from "../../lib/roles/client/mod.ts";
import { openServedFs } from "../../lib/roles/client/frontends.ts";
import { ResticServer } from "../../lib/web/restic/server.ts";

Deno.test("restic POST with one storage server down: streamed uploads need no second pass", async () => {
  const g = await startJoinedGrid({
    servers: 5,
    refreshInterval: 3600,
    shares: { k: 2, n: 4, happy: 2 },
  });
  try {
    await g.shoal(["client", "alias", "create", "--dir", g.clientDir, "bk"]);
    const node = await loadClientNode(g.clientDir);
    try {
      const fs = await openServedFs(node, "bk:repo", { create: true });
      const srv = new ResticServer({ fs, user: "u", password: "p" });
      const auth = { authorization: `Basic ${btoa("u:p")}` };
      const call = async (method: string, path: string, body?: Uint8Array) => {
        const headers: Record<string, string> = { ...auth };
        if (body) headers["content-length"] = String(body.length);
        const r = await srv.handler(
          new Request(`http://127.0.0.1/${path}`, {
            method,
            headers,
            body: body ? new Blob([body as BlobPart]).stream() : null,
            duplex: "half",
          } as RequestInit),
        );
        return { status: r.status, bytes: new Uint8Array(await r.arrayBuffer()) };
      };
      assertEquals((await call("POST", "?create=true")).status, 200);
      await g.servers[4].proc!.stop();
      g.servers[4].proc = null;
      let i = 0;
      for (const size of [0, 100, 50_000, 3_000_000]) {
        const body = new Uint8Array(size);
        crypto.getRandomValues(body.subarray(0, Math.min(size, 65536)));
        const name = `index/${(i++).toString(16).padStart(64, "0")}`;
        const r = await call("POST", name, body);
        assertEquals(r.status, 200, `POST of ${size} bytes: ${new TextDecoder().decode(r.bytes)}`);
        const back = await call("GET", name);
        assertEquals(back.bytes.length, size);
        assertEquals(back.bytes, body);
      }
    } finally {
      node.grid.close();
    }
  } finally {
    await g.close();
  }
});

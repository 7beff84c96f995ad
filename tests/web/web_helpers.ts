/** Shared by the web tests: a joined grid with `shoal client run` serving its gateway on a free port. */
import { type JoinedGrid, setConfig, startJoinedGrid } from "../helpers/joined_grid.ts";
import { type ShoalProcess, startShoal } from "../helpers/process.ts";

export interface GatewayGrid {
  g: JoinedGrid;
  client: ShoalProcess;
  /** http://127.0.0.1:PORT (no trailing slash) */
  base: string;
  port: number;
  token: string;
  /** The dashboard URL `client run` printed (carries ?token=). */
  dashboardUrl: string;
  close(): Promise<void>;
}

export async function waitFor(
  what: string,
  cond: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

export async function startGatewayGrid(
  opts: { servers?: number; shares?: { k: number; n: number; happy: number } } = {},
): Promise<GatewayGrid> {
  const g = await startJoinedGrid({
    servers: opts.servers ?? 4,
    refreshInterval: 1,
    shares: opts.shares ?? { k: 2, n: 4, happy: 3 },
  });
  let client: ShoalProcess | null = null;
  try {
    await setConfig(g.clientDir, "web", "port", 0);
    await setConfig(g.clientDir, "client", "refresh_interval", 1);
    client = await startShoal(["client", "run", "--dir", g.clientDir, "--show-secrets"]);
    const c = client;
    let m: RegExpExecArray | null = null;
    await waitFor("the gateway URL on stdout", async () => {
      if (await Promise.race([c.status.then(() => true), Promise.resolve(false)])) {
        throw new Error(`client run exited early: ${c.stderr()}`);
      }
      m = /dashboard: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9]+))/.exec(c.stdout());
      return m !== null && /web gateway at http:\/\/127\.0\.0\.1:\d+\//.test(c.stdout());
    });
    const [, dashboardUrl, port, token] = m!;
    return {
      g,
      client,
      base: `http://127.0.0.1:${port}`,
      port: Number(port),
      token,
      dashboardUrl,
      async close() {
        await c.stop();
        await g.close();
      },
    };
  } catch (e) {
    await client?.stop();
    await g.close();
    throw e;
  }
}

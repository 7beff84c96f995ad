/**
 * The client's web gateway: a Request → Response handler (access checks,
 * routing to api.ts and the dashboard) and a server on 127.0.0.1.
 * docs/web-api.md.
 *
 * Access rules (every request):
 *  - Host must be 127.0.0.1:PORT or localhost:PORT (DNS-rebinding defence).
 *  - State-changing requests (anything but GET/HEAD) are refused when the
 *    Origin is another origin or Sec-Fetch-Site says cross-site/same-site.
 *  - The access token (Authorization: Bearer, or the HttpOnly SameSite=Strict
 *    cookie set by opening /?token=TOKEN) is required on every state-changing
 *    request, on /api/ and on /alias/ (aliases hold this node's caps).
 *    Reading by cap (GET /uri/CAP) needs no token: the cap is the authority.
 *  - Nothing is logged per request, so caps in paths never reach a log.
 */
import { sleep } from "../sleep.ts";
import { base32Encode, utf8 } from "../codec/mod.ts";
import { parseCap, storageIndexFromFingerprint } from "../crypto/mod.ts";
import { type DiscoveryState, recordedStorageUrls } from "../discovery/mod.ts";
import type { Grid } from "../grid/mod.ts";
import type { ClientNode } from "../roles/client/node.ts";
import { GridNode } from "../roles/gridnode.ts";
import { loadOrCreateSecret, readTextOrNull, writePrivate } from "../roles/nodefs.ts";
// Directly, not through roles/client/mod.ts: that module starts this gateway (import cycle).
import { loadAliases } from "../roles/client/aliases.ts";
import {
  type ApiContext,
  errorResponse,
  handleFiles,
  HttpError,
  jsonResponse,
  sharesOf,
} from "./api.ts";
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from "./dashboard.ts";
import { BROWSER_CSS, BROWSER_HTML, BROWSER_JS } from "./browser.ts";
import { recordUpload } from "../roles/client/uploads.ts";
import type { UpkeepStatus } from "../roles/client/upkeep.ts";
import {
  RefreshHistory,
  ServerProbe,
  type StatusReport,
  statusReport,
  withUpkeep,
} from "./status.ts";
import { ClientMetrics } from "../metrics/client.ts";
import { VERSION } from "../version.ts";

export const API_TOKEN_FILE = "private/api-token";
export const REFRESH_HISTORY_FILE = "private/refresh-history.json";
export const WEB_TMP_DIR = "tmp";

export interface GatewayOptions {
  /** The access token (compared in constant time). */
  token: string;
  /** The port clients use in Host/Origin; set by serveGateway once listening. */
  port: () => number;
  status(): StatusReport;
  /** The file API (client nodes); null: a status-only dashboard (the operator's). */
  files: ApiContext | null;
  /** Served at /metrics behind the token (client nodes); absent: /metrics is 404. */
  metrics?: ClientMetrics;
  /** This node's alias names (never their caps), for GET /api/aliases (client nodes). */
  aliasNames?: () => Promise<string[]>;
}

function cookieName(port: number): string {
  return `shoal_token_${port}`;
}

function cookieToken(req: Request, port: number): string | null {
  const h = req.headers.get("cookie");
  if (!h) return null;
  const name = cookieName(port);
  for (const part of h.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function sameToken(a: string, b: string): boolean {
  const x = utf8(a);
  const y = utf8(b);
  if (x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}

const PAGE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

/** The gateway's request handler. */
export function createGatewayHandler(opts: GatewayOptions): (req: Request) => Promise<Response> {
  const m = opts.metrics;
  return async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    let res: Response;
    try {
      res = await handle(m ? m.countUpload(req) : req, opts);
    } catch (e) {
      res = errorResponse(e);
    }
    return m ? m.request(req, res, (performance.now() - t0) / 1000) : res;
  };
}

async function handle(req: Request, opts: GatewayOptions): Promise<Response> {
  const port = opts.port();
  const url = new URL(req.url);
  const host = req.headers.get("host") ?? "";
  const allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`];
  if (!allowedHosts.includes(host.toLowerCase())) {
    throw new HttpError(
      403,
      `this gateway answers only to http://127.0.0.1:${port}/ (Host was not one of ${
        allowedHosts.join(", ")
      })`,
    );
  }
  const safeMethod = req.method === "GET" || req.method === "HEAD";
  if (!safeMethod) {
    const origin = req.headers.get("origin");
    if (origin !== null && origin !== `http://${host.toLowerCase()}`) {
      throw new HttpError(403, "cross-site request refused: the Origin is not this gateway");
    }
    const site = req.headers.get("sec-fetch-site");
    if (site !== null && site !== "same-origin" && site !== "none") {
      throw new HttpError(403, `cross-site request refused (Sec-Fetch-Site: ${site.slice(0, 20)})`);
    }
  }
  const path = url.pathname;

  // Static dashboard parts: no token needed to fetch them (they hold no data).
  if (safeMethod && path === "/") {
    const given = url.searchParams.get("token");
    if (given !== null) {
      if (!sameToken(given, opts.token)) {
        throw new HttpError(
          403,
          "wrong access token; use the dashboard URL the node printed (or NODE/private/api-token)",
        );
      }
      return new Response(null, {
        status: 303,
        headers: {
          ...PAGE_HEADERS,
          location: "/",
          "set-cookie": `${cookieName(port)}=${opts.token}; Path=/; HttpOnly; SameSite=Strict`,
        },
      });
    }
    return new Response(DASHBOARD_HTML, {
      headers: { ...PAGE_HEADERS, "content-type": "text/html; charset=utf-8" },
    });
  }
  if (safeMethod && path === "/dashboard.js") {
    return new Response(DASHBOARD_JS, {
      headers: { ...PAGE_HEADERS, "content-type": "text/javascript; charset=utf-8" },
    });
  }
  if (safeMethod && path === "/dashboard.css") {
    return new Response(DASHBOARD_CSS, {
      headers: { ...PAGE_HEADERS, "content-type": "text/css; charset=utf-8" },
    });
  }

  // The file browser (client nodes): static, no data in it.
  const asset: Record<string, [string, string]> = {
    "/browser": [BROWSER_HTML, "text/html"],
    "/browser.js": [BROWSER_JS, "text/javascript"],
    "/browser.css": [BROWSER_CSS, "text/css"],
  };
  if (safeMethod && opts.files && Object.hasOwn(asset, path)) {
    const [body, type] = asset[path];
    return new Response(body, {
      headers: { ...PAGE_HEADERS, "content-type": `${type}; charset=utf-8` },
    });
  }

  if (path === "/metrics" && opts.metrics) {
    if (!safeMethod) throw new HttpError(405, "use GET /metrics");
    checkToken(req, opts.token, port);
    return await opts.metrics.registry.response(req);
  }

  const isApi = path === "/api" || path.startsWith("/api/");
  const isAlias = path === "/alias" || path.startsWith("/alias/");
  const isUri = path === "/uri" || path.startsWith("/uri/");
  if (!isApi && !isAlias && !isUri) {
    throw new HttpError(404, "no such page; the API lives under /uri, /alias and /api");
  }
  if (!opts.files && !isApi) {
    throw new HttpError(
      404,
      "this dashboard serves no files (it is the operator's); use a client node",
    );
  }

  if (!safeMethod || isApi || isAlias) checkToken(req, opts.token, port);

  if (isApi) return await handleApi(req, path, opts);
  return await handleFiles(req, url, opts.files!);
}

function checkToken(req: Request, token: string, port: number): void {
  const auth = req.headers.get("authorization");
  let given: string | null = null;
  if (auth !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) {
      throw new HttpError(401, "the Authorization header must be 'Bearer TOKEN'", {
        "www-authenticate": "Bearer",
      });
    }
    given = m[1];
  } else {
    given = cookieToken(req, port);
  }
  if (given === null) {
    throw new HttpError(
      401,
      "this request needs the access token: send 'Authorization: Bearer TOKEN' (TOKEN is in NODE/private/api-token) " +
        "or open the dashboard through the URL `shoal client run` printed",
      { "www-authenticate": "Bearer" },
    );
  }
  if (!sameToken(given, token)) {
    throw new HttpError(403, "wrong access token (see NODE/private/api-token)");
  }
}

async function handleApi(req: Request, path: string, opts: GatewayOptions): Promise<Response> {
  if (path === "/api/status" && (req.method === "GET" || req.method === "HEAD")) {
    return jsonResponse(200, opts.status());
  }
  if (
    path === "/api/aliases" && (req.method === "GET" || req.method === "HEAD") && opts.aliasNames
  ) {
    return jsonResponse(200, { aliases: (await opts.aliasNames()).sort() });
  }
  if (path === "/api/shares" && req.method === "POST" && opts.files) {
    let cap: unknown;
    try {
      cap = (await req.json())?.cap;
    } catch {
      throw new HttpError(400, 'send JSON: {"cap": "shoal:..."}');
    }
    if (typeof cap !== "string") throw new HttpError(400, 'send JSON: {"cap": "shoal:..."}');
    parseCap(cap.trim());
    const grid = await opts.files.getGrid();
    return jsonResponse(200, await sharesOf(grid, cap.trim(), base32Encode));
  }
  throw new HttpError(404, "unknown API route; see docs/web-api.md");
}

export interface Gateway {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

/** Serve the handler on 127.0.0.1:`port` (0: a free port). */
export function serveGateway(
  opts: Omit<GatewayOptions, "port">,
  port: number,
  portHint = "set [web] port in shoal.toml to a free port (0 picks one)",
): Promise<Gateway> {
  let actual = port;
  const handler = createGatewayHandler({ ...opts, port: () => actual });
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: "127.0.0.1",
        port,
        onListen: (addr) => {
          actual = addr.port;
          resolve({
            url: `http://127.0.0.1:${actual}/`,
            port: actual,
            token: opts.token,
            close: async () => {
              await server.shutdown();
            },
          });
        },
        onError: (e) => errorResponse(e),
      }, handler);
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse) {
        reject(
          new Error(
            `127.0.0.1:${port} is already in use; ${portHint}`,
          ),
        );
      } else reject(e);
    }
  });
}

// ---------------------------------------------------------------- the client node's gateway

export interface ClientGateway extends Gateway {
  history: RefreshHistory;
  /** Tell the gateway a refresh happened (records it, re-probes servers). */
  refreshed(): void;
}

/** Load (or create) the node's access token: 32 random bytes, base32, in private/api-token (0600). */
export async function loadApiToken(dir: string): Promise<string> {
  return base32Encode(await loadOrCreateSecret(`${dir}/${API_TOKEN_FILE}`));
}

/** A Grid over the recorded servers (refreshing first only when nothing is recorded yet). */
async function gridOf(node: ClientNode, gridNode: GridNode): Promise<Grid> {
  if (gridNode.state.gsd === null) await gridNode.refresh({ fanout: node.config.fanout });
  const urls = recordedStorageUrls(gridNode.state).map((r) => r.url);
  if (urls.length === 0) {
    throw new HttpError(503, "no storage servers are known yet: the grid has no announced servers");
  }
  const { k, n } = node.config.shares;
  return gridNode.grid(urls, { k, n });
}

/**
 * Start the gateway of a client node: token, refresh history (last entries
 * in private/refresh-history.json), server probe, and the HTTP server on
 * 127.0.0.1:config.webPort.
 */
export async function startClientGateway(
  node: ClientNode,
  deps: {
    convergenceSecret: () => Promise<Uint8Array>;
    signal: AbortSignal;
    /** The upkeep section of /api/status (lib/roles/client/upkeep.ts). */
    upkeep?: () => UpkeepStatus;
  },
): Promise<ClientGateway> {
  const token = await loadApiToken(node.dir);
  const tmpDir = `${node.dir}/${WEB_TMP_DIR}`;
  await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(tmpDir, 0o700);
  let metrics: ClientMetrics | null = null;
  const history = new RefreshHistory(
    RefreshHistory.parse(await readTextOrNull(`${node.dir}/${REFRESH_HISTORY_FILE}`)),
    (entries) =>
      writePrivate(`${node.dir}/${REFRESH_HISTORY_FILE}`, RefreshHistory.serialize(entries)),
    (e) => metrics?.refreshes.inc({ outcome: !e.ok ? "failed" : e.full ? "changed" : "unchanged" }),
  );
  const gridNode = node.grid;
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  deps.signal.addEventListener("abort", onAbort, { once: true });
  const probe = new ServerProbe({
    pool: gridNode.pool,
    gsdStorageIndex: storageIndexFromFingerprint(gridNode.intro.gsdReadcap.fingerprint),
    state: (): DiscoveryState => gridNode.state,
    intervalMs: Math.max(500, Math.min(node.config.refreshInterval, 60) * 1000),
    signal: ac.signal,
  });
  const status = (): StatusReport => {
    const r = statusReport(gridNode.state, probe, history, {
      role: "client",
      nickname: node.config.nickname,
      refreshInterval: node.config.refreshInterval,
    });
    const upkeep = deps.upkeep?.() ?? null;
    return { ...r, upkeep, health: withUpkeep(r.health, upkeep) };
  };
  metrics = new ClientMetrics({
    servers: () => {
      const sv = status().servers;
      return {
        known: sv.length,
        reachable: sv.filter((x) => x.reachable === true).length,
        unknown: sv.filter((x) => x.reachable === null).length,
      };
    },
    upkeep: () => deps.upkeep?.() ?? null,
    gsdExpiresIn: () =>
      gridNode.state.gsd ? gridNode.state.gsd.expires - Math.floor(Date.now() / 1000) : null,
  }, { version: `shoal/${VERSION}` });
  const gw = await serveGateway({
    token,
    metrics,
    files: {
      tmpDir,
      shares: node.config.shares,
      convergenceSecret: deps.convergenceSecret,
      getGrid: () => gridOf(node, gridNode),
      resolveAlias: async (name) => (await loadAliases(node.dir)).get(name) ?? null,
      recordUpload: (cap) => recordUpload(node.dir, cap, null),
    },
    aliasNames: async () => [...(await loadAliases(node.dir)).keys()],
    status,
  }, node.config.webPort).catch((e) => {
    deps.signal.removeEventListener("abort", onAbort);
    throw e;
  });
  probe.start();
  return {
    ...gw,
    history,
    refreshed: () => probe.poke(),
    close: async () => {
      deps.signal.removeEventListener("abort", onAbort);
      ac.abort();
      await gw.close();
      await probe.stopped();
      await history.flush();
    },
  };
}

// ---------------------------------------------------------------- the operator's dashboard

export interface OperatorGateway extends Gateway {
  history: RefreshHistory;
}

/**
 * The operator's status-only dashboard on 127.0.0.1:`port`: the same view as a
 * client's, read with the operator node's own discovery state, refreshed every
 * `refreshInterval` seconds, with which servers lack the newest GSD. Serves no
 * files. The token lives in OP/private/api-token.
 */
export async function startOperatorGateway(
  dir: string,
  opts: {
    port: number;
    refreshInterval: number;
    signal: AbortSignal;
    log?: (line: string) => void;
  },
): Promise<OperatorGateway> {
  const gridNode = await GridNode.load(dir);
  if (!gridNode) throw new Error(`${dir} has no introduction text; is it an operator node?`);
  const token = await loadApiToken(dir);
  const history = new RefreshHistory(
    RefreshHistory.parse(await readTextOrNull(`${dir}/${REFRESH_HISTORY_FILE}`)),
    (entries) => writePrivate(`${dir}/${REFRESH_HISTORY_FILE}`, RefreshHistory.serialize(entries)),
  );
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  opts.signal.addEventListener("abort", onAbort, { once: true });
  const probe = new ServerProbe({
    pool: gridNode.pool,
    gsdStorageIndex: storageIndexFromFingerprint(gridNode.intro.gsdReadcap.fingerprint),
    state: () => gridNode.state,
    intervalMs: Math.max(500, Math.min(opts.refreshInterval, 60) * 1000),
    signal: ac.signal,
  });
  let gw: Gateway;
  try {
    gw = await serveGateway(
      {
        token,
        files: null,
        status: () =>
          statusReport(gridNode.state, probe, history, {
            role: "operator",
            nickname: "operator",
            refreshInterval: opts.refreshInterval,
          }),
      },
      opts.port,
      "choose another --web-port (0 picks a free one)",
    );
  } catch (e) {
    opts.signal.removeEventListener("abort", onAbort);
    gridNode.close();
    throw e;
  }
  const loop = (async () => {
    while (!ac.signal.aborted) {
      try {
        const r = await gridNode.refresh({ fanout: 2 });
        history.recordResult(r, gridNode.state);
        probe.poke();
      } catch (e) {
        history.recordFailure((e as Error).message, gridNode.state);
        opts.log?.(`dashboard refresh failed: ${(e as Error).message}`);
      }
      await sleep(opts.refreshInterval * 1000, ac.signal);
    }
  })();
  probe.start();
  return {
    ...gw,
    history,
    close: async () => {
      opts.signal.removeEventListener("abort", onAbort);
      ac.abort();
      await gw.close();
      await loop;
      await probe.stopped();
      await history.flush();
      gridNode.close();
    },
  };
}

/**
 * A client node's metrics (docs/metrics.md), served by its web gateway at
 * /metrics behind the gateway's token. Labels are fixed vocabulary only:
 * never a cap, a path under an alias, or a storage URL.
 */
import { type Counter, type Gauge, type Histogram, type Labels, Registry } from "./registry.ts";
import type { UpkeepStatus } from "../roles/client/upkeep.ts";

export interface ClientMetricsSource {
  /** Servers the node knows, and how many answered the last probe. */
  servers(): { known: number; reachable: number; unknown: number };
  /** Seconds until (positive) or since (negative) the GSD's expiry; null: none read. */
  gsdExpiresIn(): number | null;
  /** The client's upkeep (lease renewal and repair), when it runs. */
  upkeep?(): UpkeepStatus | null;
}

/** Which part of the gateway a path belongs to (fixed vocabulary). */
export function gatewayRoute(path: string): string {
  if (path === "/metrics") return "metrics";
  if (path === "/" || path === "/dashboard.js" || path === "/dashboard.css") return "dashboard";
  for (const p of ["uri", "alias", "api"]) {
    if (path === `/${p}` || path.startsWith(`/${p}/`)) return p === "api" ? apiRoute(path) : p;
  }
  return "other";
}

function apiRoute(path: string): string {
  return path === "/api/status" ? "api_status" : path === "/api/shares" ? "api_shares" : "api";
}

export class ClientMetrics {
  readonly registry = new Registry();
  readonly refreshes: Counter;
  readonly requests: Counter;
  readonly latency: Histogram;
  readonly uploaded: Counter;
  readonly downloaded: Counter;
  readonly serversKnown: Gauge;

  constructor(src: ClientMetricsSource, info: { version: string }) {
    const r = this.registry;
    r.gauge("shoal_client_info", "Constant 1, labelled with the software version", ["version"])
      .set({ version: info.version }, 1);
    this.refreshes = r.counter(
      "shoal_client_refreshes",
      "Refreshes of the server list, by outcome (changed: a full read; unchanged; failed)",
      ["outcome"],
    );
    this.serversKnown = r.gauge("shoal_client_servers_known", "Storage servers in the server list")
      .collect(() => src.servers().known);
    r.gauge(
      "shoal_client_servers_reachable",
      "Storage servers that answered the last probe",
    ).collect(() => src.servers().reachable);
    r.gauge(
      "shoal_client_gsd_expiry_seconds",
      "Seconds until the grid service directory expires (negative: expired that long ago)",
    ).collect((): Array<[Labels, number]> | number => {
      const s = src.gsdExpiresIn();
      return s === null ? [] : s;
    });
    const upkeep = () => src.upkeep?.() ?? null;
    r.gauge(
      "shoal_client_upkeep_last_check_objects",
      "Objects found at the upkeep's last check, by state (healthy, unhealthy, unrecoverable, " +
        "repaired, repair_failed); absent before the first check",
      ["state"],
    ).collect((): Array<[Labels, number]> => {
      const c = upkeep()?.lastCheck;
      if (!c) return [];
      return [
        [{ state: "healthy" }, c.healthy],
        [{ state: "unhealthy" }, c.unhealthy],
        [{ state: "unrecoverable" }, c.unrecoverable],
        [{ state: "repaired" }, c.repaired],
        [{ state: "repair_failed" }, c.repairFailed],
      ];
    });
    r.gauge(
      "shoal_client_upkeep_last_renewal_objects",
      "Objects at the upkeep's last lease renewal, by outcome (renewed, failed, missing)",
      ["outcome"],
    ).collect((): Array<[Labels, number]> => {
      const l = upkeep()?.lastRenewal;
      if (!l) return [];
      return [
        [{ outcome: "renewed" }, l.renewed],
        [{ outcome: "failed" }, l.failed],
        [{ outcome: "missing" }, l.missing],
      ];
    });
    r.gauge(
      "shoal_client_upkeep_renewal_failures",
      "Lease renewals that failed and have not succeeded since",
    ).collect(() => upkeep()?.failures.length ?? 0);
    this.requests = r.counter(
      "shoal_client_gateway_requests",
      "Web gateway requests answered, by route and HTTP status",
      ["route", "status"],
    );
    this.latency = r.histogram(
      "shoal_client_gateway_request_duration_seconds",
      "Time from the request to the response head, by route",
      ["route"],
    );
    this.uploaded = r.counter(
      "shoal_client_uploaded_bytes",
      "File bytes received by the gateway for upload (PUT/POST bodies under /uri and /alias)",
    );
    this.downloaded = r.counter(
      "shoal_client_downloaded_bytes",
      "File bytes sent by the gateway (GET bodies under /uri and /alias)",
    );
  }

  /** Count one gateway request; wraps the response body to count bytes sent. */
  request(req: Request, res: Response, seconds: number): Response {
    const route = gatewayRoute(new URL(req.url).pathname);
    this.requests.inc({ route, status: String(res.status) });
    this.latency.observe({ route }, seconds);
    const files = route === "uri" || route === "alias";
    if (!files || res.body === null) return res;
    if (req.method !== "GET" || res.status >= 300) return res;
    const out = this.downloaded;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          out.inc(undefined, chunk.byteLength);
          ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  /** Wrap an upload body so its bytes are counted as they stream in. */
  countUpload(req: Request): Request {
    const route = gatewayRoute(new URL(req.url).pathname);
    if ((route !== "uri" && route !== "alias") || req.body === null) return req;
    if (req.method !== "PUT" && req.method !== "POST") return req;
    const up = this.uploaded;
    const body = req.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          up.inc(undefined, chunk.byteLength);
          ctl.enqueue(chunk);
        },
      }),
    );
    return new Request(req, { body, duplex: "half" } as RequestInit);
  }
}

/**
 * A storage server's metrics (docs/metrics.md) and the plain-HTTP listener
 * that serves them at /metrics. Nothing here sees a secret: routes are the
 * path's shape (routeOf), statuses are numbers, store figures are totals.
 */
import type { RequestObserver } from "../storage/server.ts";
import type { ShareStore, StoreUsage } from "../storage/store.ts";
import { type Counter, type Gauge, type Histogram, Registry } from "./registry.ts";

const USAGE_CACHE_MS = 5000;

export class StorageMetrics implements RequestObserver {
  readonly registry = new Registry();
  readonly requests: Counter;
  readonly latency: Histogram;
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  readonly gcRuns: Counter;
  readonly gcRemoved: Counter;
  readonly connections: Gauge;
  #usage: { at: number; value: Promise<StoreUsage> } | null = null;

  constructor(store: ShareStore, info: { software: string }) {
    const r = this.registry;
    r.gauge("shoal_storage_info", "Constant 1, labelled with the software version", ["version"])
      .set({ version: info.software }, 1);
    this.requests = r.counter(
      "shoal_storage_requests",
      "Storage-protocol requests answered, by route and HTTP status",
      ["route", "status"],
    );
    this.latency = r.histogram(
      "shoal_storage_request_duration_seconds",
      "Time from the request head to the response head, by route",
      ["route"],
    );
    this.bytesIn = r.counter(
      "shoal_storage_received_bytes",
      "Request body bytes received (as declared by Content-Length), by route",
      ["route"],
    );
    this.bytesOut = r.counter(
      "shoal_storage_sent_bytes",
      "Response body bytes sent, by route",
      ["route"],
    );
    this.connections = r.gauge("shoal_storage_open_connections", "TLS connections open now");
    const usage = (): Promise<StoreUsage> => {
      const now = Date.now();
      if (!this.#usage || now - this.#usage.at > USAGE_CACHE_MS) {
        this.#usage = { at: now, value: store.usage() };
        this.#usage.value.catch(() => (this.#usage = null));
      }
      return this.#usage.value;
    };
    const perKind = (f: (u: StoreUsage["immutable"]) => number) => async () => {
      const u = await usage();
      return [[{ kind: "immutable" }, f(u.immutable)], [{ kind: "mutable" }, f(u.mutable)]] as [
        Record<string, string>,
        number,
      ][];
    };
    r.gauge(
      "shoal_storage_indexes",
      "Storage indexes holding at least one share (immutable files, mutable slots)",
      ["kind"],
    ).collect(perKind((k) => k.indexes));
    r.gauge("shoal_storage_shares", "Shares stored", ["kind"]).collect(perKind((k) => k.shares));
    r.gauge("shoal_storage_stored_bytes", "Bytes of share data stored", ["kind"])
      .collect(perKind((k) => k.bytes));
    r.gauge("shoal_storage_leases", "Unexpired leases").collect(async () => (await usage()).leases);
    r.gauge("shoal_storage_uploads_in_progress", "Immutable uploads allocated, not yet complete")
      .collect(async () => (await usage()).uploads);
    r.gauge(
      "shoal_storage_available_bytes",
      "Bytes the store may still use (free disk space minus reserved space and pending uploads)",
    ).collect(() => store.availableSpace());
    this.gcRuns = r.counter(
      "shoal_storage_gc_runs",
      "Garbage-collection runs, by outcome (ok, failed)",
      ["outcome"],
    );
    this.gcRemoved = r.counter(
      "shoal_storage_gc_removed_indexes",
      "Storage indexes removed by garbage collection (all leases expired)",
    );
  }

  /** Connections open now, read at scrape time. */
  trackConnections(count: () => number): void {
    this.connections.collect(count);
  }

  request(req: Request, route: string, res: Response, seconds: number): Response {
    this.requests.inc({ route, status: String(res.status) });
    this.latency.observe({ route }, seconds);
    const cl = Number(req.headers.get("content-length") ?? 0);
    if (cl > 0 && Number.isSafeInteger(cl)) this.bytesIn.inc({ route }, cl);
    if (res.body === null) return res;
    const out = this.bytesOut;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          out.inc({ route }, chunk.byteLength);
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
}

export interface MetricsListener {
  addr: { hostname: string; port: number };
  close(): Promise<void>;
}

/**
 * Serve `registry` at http://HOST:PORT/metrics (plain HTTP; loopback
 * recommended). Anything else answers 404.
 */
export function serveMetrics(
  registry: Registry,
  listen: { host: string; port: number },
): MetricsListener {
  let addr = { hostname: listen.host, port: listen.port };
  const server = Deno.serve({
    hostname: listen.host,
    port: listen.port,
    onListen: (a) => (addr = { hostname: a.hostname, port: a.port }),
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/metrics" && (req.method === "GET" || req.method === "HEAD")) {
      return registry.response(req);
    }
    return new Response("only GET /metrics is served here\n", { status: 404 });
  });
  const a = server.addr as Deno.NetAddr;
  addr = { hostname: a.hostname, port: a.port };
  return {
    get addr() {
      return addr;
    },
    close: () => server.shutdown(),
  };
}

/**
 * A small metrics registry: counters, gauges and histograms with labels, and
 * their text exposition in the Prometheus text format (0.0.4, what promtool
 * and every scraper read) or OpenMetrics 1.0 (on `Accept:
 * application/openmetrics-text`). docs/metrics.md lists every metric.
 *
 * Label values are only ever fixed vocabulary (routes, statuses, outcomes,
 * nicknames): never a cap, a storage index, a swissnum or a token.
 */

export type Labels = Record<string, string>;

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function fmtNum(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME_RE.test(name)) throw new Error(`bad metric name ${name}`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l === "le") throw new Error(`bad label name ${l}`);
    }
  }
  protected key(labels: Labels | undefined): string[] {
    const vals = this.labelNames.map((n) => {
      const v = labels?.[n];
      if (v === undefined) throw new Error(`metric ${this.name}: label ${n} missing`);
      return String(v);
    });
    return vals;
  }
  abstract readonly type: "counter" | "gauge" | "histogram";
  abstract lines(openMetrics: boolean): Promise<string[]>;
}

/** A monotonically increasing count; exposed as NAME_total. */
export class Counter extends Metric {
  readonly type = "counter";
  readonly #values = new Map<string, { labels: string[]; value: number }>();

  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) return;
    const vals = this.key(labels);
    const k = JSON.stringify(vals);
    const e = this.#values.get(k);
    if (e) e.value += by;
    else this.#values.set(k, { labels: vals, value: by });
  }

  get(labels?: Labels): number {
    return this.#values.get(JSON.stringify(this.key(labels)))?.value ?? 0;
  }

  lines(): Promise<string[]> {
    const out: string[] = [];
    if (this.labelNames.length === 0 && this.#values.size === 0) {
      out.push(`${this.name}_total 0`);
    }
    for (const e of this.#values.values()) {
      out.push(`${this.name}_total${labelText(this.labelNames, e.labels)} ${fmtNum(e.value)}`);
    }
    return Promise.resolve(out);
  }
}

/** A value that goes up and down: set directly, or read at scrape time by `collect`. */
export class Gauge extends Metric {
  readonly type = "gauge";
  readonly #values = new Map<string, { labels: string[]; value: number }>();
  #collect:
    | (() => Promise<Array<[Labels, number]> | number> | Array<[Labels, number]> | number)
    | null = null;

  set(labels: Labels | undefined, value: number): void {
    const vals = this.key(labels);
    this.#values.set(JSON.stringify(vals), { labels: vals, value });
  }

  inc(labels?: Labels, by = 1): void {
    const vals = this.key(labels);
    const k = JSON.stringify(vals);
    const e = this.#values.get(k);
    if (e) e.value += by;
    else this.#values.set(k, { labels: vals, value: by });
  }

  dec(labels?: Labels, by = 1): void {
    this.inc(labels, -by);
  }

  /** Read the value(s) when scraped (replaces set values). */
  collect(
    f: () => Promise<Array<[Labels, number]> | number> | Array<[Labels, number]> | number,
  ): this {
    this.#collect = f;
    return this;
  }

  async lines(): Promise<string[]> {
    if (this.#collect) {
      let r: Array<[Labels, number]> | number;
      try {
        r = await this.#collect();
      } catch {
        return [];
      }
      if (typeof r === "number") return [`${this.name} ${fmtNum(r)}`];
      return r.map(([l, v]) =>
        `${this.name}${labelText(this.labelNames, this.key(l))} ${fmtNum(v)}`
      );
    }
    if (this.labelNames.length === 0 && this.#values.size === 0) return [`${this.name} 0`];
    return [...this.#values.values()].map((e) =>
      `${this.name}${labelText(this.labelNames, e.labels)} ${fmtNum(e.value)}`
    );
  }
}

/** Latency buckets in seconds, from 1 ms to 60 s. */
export const LATENCY_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** A distribution: cumulative buckets, a sum and a count. */
export class Histogram extends Metric {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  readonly #values = new Map<
    string,
    { labels: string[]; counts: number[]; sum: number; n: number }
  >();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: number[]) {
    super(name, help, labelNames);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels | undefined, v: number): void {
    const vals = this.key(labels);
    const k = JSON.stringify(vals);
    let e = this.#values.get(k);
    if (!e) {
      e = { labels: vals, counts: this.buckets.map(() => 0), sum: 0, n: 0 };
      this.#values.set(k, e);
    }
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) e.counts[i]++;
    e.sum += v;
    e.n++;
  }

  count(labels?: Labels): number {
    return this.#values.get(JSON.stringify(this.key(labels)))?.n ?? 0;
  }

  lines(): Promise<string[]> {
    const out: string[] = [];
    for (const e of this.#values.values()) {
      this.buckets.forEach((b, i) => {
        out.push(
          `${this.name}_bucket${labelText(this.labelNames, e.labels, `le="${fmtNum(b)}"`)} ${
            e.counts[i]
          }`,
        );
      });
      out.push(`${this.name}_bucket${labelText(this.labelNames, e.labels, 'le="+Inf"')} ${e.n}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, e.labels)} ${fmtNum(e.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, e.labels)} ${e.n}`);
    }
    return Promise.resolve(out);
  }
}

export const PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

export class Registry {
  readonly #metrics = new Map<string, Metric>();

  #add<M extends Metric>(m: M): M {
    if (this.#metrics.has(m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.#metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: string[] = [],
    buckets = LATENCY_BUCKETS,
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** The exposition text (Prometheus text format, or OpenMetrics 1.0 ending in # EOF). */
  async expose(openMetrics = false): Promise<string> {
    const out: string[] = [];
    for (const m of this.#metrics.values()) {
      const family = m.type === "counter" && !openMetrics ? `${m.name}_total` : m.name;
      out.push(`# HELP ${family} ${escapeHelp(m.help)}`);
      out.push(`# TYPE ${family} ${m.type}`);
      out.push(...await m.lines(openMetrics));
    }
    if (openMetrics) out.push("# EOF");
    return out.join("\n") + "\n";
  }

  /** A /metrics response, negotiated on the Accept header. */
  async response(req: Request): Promise<Response> {
    const om = (req.headers.get("accept") ?? "").includes("application/openmetrics-text");
    const body = req.method === "HEAD" ? null : await this.expose(om);
    return new Response(body, {
      headers: {
        "content-type": om ? OPENMETRICS_TYPE : PROMETHEUS_TYPE,
        "cache-control": "no-store",
      },
    });
  }
}

/**
 * The storage node's configuration file, D/shoal.toml (docs/storage-node.md):
 * parsing with clear errors naming the key, defaults, and rendering a
 * commented file a person can read and edit.
 */
import { describeUnknownKey, parseTomlText, trackReads, unreadKeys } from "../tomlconf.ts";
import { formatLocationHint, MAX_LOCATION_HINTS, parseLocationHint } from "../../storage/mod.ts";

/** A configuration problem; the message names the file and key. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface HostPort {
  /** DNS name, IPv4 address, or IPv6 address without brackets. */
  host: string;
  port: number;
}

export interface StorageConfig {
  nickname: string;
  listen: HostPort;
  /** Location hints published in the storage URL, "host:port" each. */
  locations: string[];
  reservedSpace: number;
  maxShareSize: number;
  maxBodySize: number;
  maxBatchSlots: number;
  /** Seconds. */
  leaseDuration: number;
  /** Seconds between garbage-collection passes. */
  gcInterval: number;
  /**
   * Which shares garbage collection deletes (docs/storage-node.md §5): "off" (default) never
   * deletes a share for expired leases; "age" deletes a storage index once every lease on it has
   * expired; "cutoff-date" also treats leases last renewed before `gcCutoffDate` as expired.
   */
  gc: GcMode;
  /** ms since the epoch (cutoff-date mode), else null. */
  gcCutoffDate: number | null;
  /** Seconds without data after which an upload in progress is dropped. */
  incomingTimeout: number;
  /** Most immutable uploads in progress at once. */
  maxUploads: number;
  /** Seconds allowed for a TLS handshake from the TCP accept. */
  handshakeTimeout: number;
  /** Seconds for a request head (and a small body read before authorization) from its first byte. */
  requestTimeout: number;
  /** Most connections open at once, and from one client address. */
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Seconds between refreshes of the grid view (when joined to a grid). */
  refreshInterval: number;
}

export type GcMode = "off" | "age" | "cutoff-date";
export const GC_MODES: readonly GcMode[] = ["off", "age", "cutoff-date"];

/** One line describing a garbage-collection policy, as `storage run` prints it at start-up. */
export function describeGc(
  c: Pick<StorageConfig, "gc" | "gcCutoffDate" | "leaseDuration">,
): string {
  if (c.gc === "off") {
    return 'garbage collection: off (storage.gc = "off"): no share is ever deleted because its ' +
      'leases expired; set storage.gc = "age" to reclaim space';
  }
  if (c.gc === "age") {
    return `garbage collection: by age (storage.gc = "age"): a share is deleted once every lease on ` +
      `it has expired, ${c.leaseDuration}s after its last renewal`;
  }
  return `garbage collection: by cutoff date (storage.gc = "cutoff-date"): a share is deleted once ` +
    `no lease on it was renewed since ${
      new Date(c.gcCutoffDate!).toISOString()
    } (or every lease expired)`;
}

export const CONFIG_DEFAULTS = {
  reservedSpace: "1G",
  maxShareSize: "128GiB",
  maxBodySize: "64MiB",
  maxBatchSlots: 4096,
  leaseDuration: "31d",
  gcInterval: "1h",
  gc: "off",
  incomingTimeout: "5m",
  maxUploads: 10_000,
  handshakeTimeout: "10s",
  requestTimeout: "30s",
  maxConnections: 10_000,
  maxConnectionsPerAddress: 100,
  refreshInterval: "60s",
} as const;

const UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  p: 1e15,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
  pi: 1024 ** 5,
};

/**
 * Parse a byte size: a decimal number with an optional unit. K/M/G/T/P are
 * powers of 1000, KiB/MiB/GiB/TiB/PiB powers of 1024; a trailing "B" is
 * optional and case is ignored ("0", "500M", "10G", "1.5TB", "64MiB").
 */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]i?)?b?\s*$/i.exec(text);
  if (!m) {
    throw new SyntaxError(
      `'${text}' is not a size; use a number with an optional unit, e.g. 0, 500M, 10G, 1T, 64MiB`,
    );
  }
  const n = Number(m[1]) * UNITS[(m[2] ?? "").toLowerCase()];
  if (!Number.isFinite(n) || n > Number.MAX_SAFE_INTEGER) {
    throw new SyntaxError(`size '${text}' is too large`);
  }
  return Math.floor(n);
}

/** Parse a duration: integer seconds, or a number with s/m/h/d ("2s", "30m", "1h", "31d"). */
export function parseDuration(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isSafeInteger(text) || text <= 0) {
      throw new SyntaxError(`duration ${text} must be a positive number of seconds`);
    }
    return text;
  }
  const m = /^\s*([0-9]+)\s*([smhd]?)\s*$/.exec(text);
  if (!m || Number(m[1]) <= 0) {
    throw new SyntaxError(`'${text}' is not a duration; use e.g. 30s, 10m, 1h, 31d`);
  }
  return Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2]]!;
}

/** Parse "host:port" (IPv6 as "[::1]:port"); same rules as a storage URL's location hint. */
export function parseHostPort(text: string): HostPort {
  try {
    const h = parseLocationHint(text.trim(), `'${text}'`);
    return { host: h.host, port: h.port };
  } catch (e) {
    throw new SyntaxError(
      `${(e as Error).message} (use HOST:PORT, e.g. 127.0.0.1:7001, [::1]:7001, example.org:7001)`,
    );
  }
}

/** "host:port", IPv6 hosts in brackets. */
export function formatHostPort(hp: HostPort): string {
  return formatLocationHint(hp);
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** Render a fresh, commented shoal.toml. */
export function renderConfig(c: {
  nickname: string;
  listen: string;
  locations: string[];
  reservedSpace: string;
}): string {
  return `# Shoal storage node configuration.
# Edit while the node is stopped; see docs/storage-node.md for every key.

[node]
# What this node directory holds.
role = "storage"
# A name for people; announced to the grid (not secret, not unique).
nickname = ${tomlString(c.nickname)}

[storage]
# Address and port the server listens on (HOST:PORT).
listen = ${tomlString(c.listen)}
# Where clients connect: location hints put in the storage URL (HOST:PORT each).
locations = [${c.locations.map(tomlString).join(", ")}]
# Free disk space to leave untouched; allocations are refused below it
# (e.g. "0", "500M", "10G", "1T"; K/M/G/T are powers of 1000, KiB/MiB/GiB of 1024).
reserved_space = ${tomlString(c.reservedSpace)}
# Largest share accepted.
max_share_size = ${tomlString(CONFIG_DEFAULTS.maxShareSize)}
# Largest request body (CBOR request, upload chunk) and batch-read response.
max_body_size = ${tomlString(CONFIG_DEFAULTS.maxBodySize)}
# Most slots one batch read may name.
max_batch_slots = ${CONFIG_DEFAULTS.maxBatchSlots}
# How long a lease lasts after it is added or renewed (s, m, h, d).
lease_duration = ${tomlString(CONFIG_DEFAULTS.leaseDuration)}
# Garbage collection: which shares may be deleted to reclaim space (docs/storage-node.md §5).
#   "off"         (default) never delete a share because its leases expired: nothing a client
#                 stored disappears on its own, and the disk only grows;
#   "age"         delete a share once every lease on it has expired (lease_duration after its last
#                 renewal): clients must renew (a running 'shoal client run' does, by itself);
#   "cutoff-date" delete a share no lease on which was renewed since gc_cutoff_date (YYYY-MM-DD).
# 'shoal storage run' prints the policy in effect when it starts.
gc = ${tomlString(CONFIG_DEFAULTS.gc)}
# How often garbage collection runs (it also drops uploads that stopped receiving data).
gc_interval = ${tomlString(CONFIG_DEFAULTS.gcInterval)}
# An upload that receives no data for this long is dropped and its space freed.
incoming_timeout = ${tomlString(CONFIG_DEFAULTS.incomingTimeout)}
# Most uploads in progress at once (each is a file in storage/incoming/).
max_uploads = ${CONFIG_DEFAULTS.maxUploads}
# A TLS handshake must complete within this long of the connection opening.
handshake_timeout = ${tomlString(CONFIG_DEFAULTS.handshakeTimeout)}
# A request head (and a body of up to 64 KiB) must arrive within this long of its first byte.
request_timeout = ${tomlString(CONFIG_DEFAULTS.requestTimeout)}
# Most connections open at once, and from any one client address.
max_connections = ${CONFIG_DEFAULTS.maxConnections}
max_connections_per_address = ${CONFIG_DEFAULTS.maxConnectionsPerAddress}

[discovery]
# Once joined to a grid (shoal storage join): how often to re-read the grid service
# directory and republish this server's announcement where it is missing or stale.
refresh_interval = ${tomlString(CONFIG_DEFAULTS.refreshInterval)}
`;
}

/** Parse and validate shoal.toml text; `file` names it in errors. */
export function parseConfig(text: string, file = "shoal.toml"): StorageConfig {
  const raw = parseTomlText(text, file, (m) => new ConfigError(m));
  // Every key read below is a known key; anything else in the file is reported at the end.
  const used = new Set<string>();
  const doc = trackReads(raw, used);
  const table = (name: string): Record<string, unknown> => {
    const t = doc[name];
    if (t === undefined) return {};
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      throw new ConfigError(`${file}: [${name}] must be a table`);
    }
    return t as Record<string, unknown>;
  };
  const node = table("node");
  const st = table("storage");
  const disc = table("discovery");
  const fail = (key: string, why: string): never => {
    throw new ConfigError(`${file}: ${key}: ${why}`);
  };
  if (node.role !== undefined && node.role !== "storage") {
    fail("node.role", `this is a '${String(node.role)}' node, not a storage node`);
  }
  const str = (
    t: Record<string, unknown>,
    tn: string,
    key: string,
    dflt?: string | number,
  ): string | number => {
    const v = t[key] ?? dflt;
    if (v === undefined) fail(`${tn}.${key}`, "missing (required)");
    if (typeof v !== "string" && typeof v !== "number") fail(`${tn}.${key}`, "must be a string");
    return v as string | number;
  };
  const conv = <T>(key: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      return fail(key, (e as Error).message);
    }
  };
  const nickname = str(node, "node", "nickname", "");
  if (typeof nickname !== "string" || nickname.length > 200) {
    fail("node.nickname", "must be a string of at most 200 characters");
  }
  const listen = conv("storage.listen", () => parseHostPort(String(str(st, "storage", "listen"))));
  const locRaw = st.locations ?? [formatHostPort(listen)];
  if (
    !Array.isArray(locRaw) || locRaw.length === 0 || !locRaw.every((x) => typeof x === "string")
  ) {
    fail("storage.locations", 'must be a non-empty list of "HOST:PORT" strings');
  }
  const locations = conv(
    "storage.locations",
    () => (locRaw as string[]).map((l) => formatHostPort(parseHostPort(l))),
  );
  if (locations.length > MAX_LOCATION_HINTS) {
    fail("storage.locations", `at most ${MAX_LOCATION_HINTS} entries fit in a storage URL`);
  }
  const size = (key: string, dflt: string) =>
    conv(`storage.${key}`, () => {
      const v = str(st, "storage", key, dflt);
      return typeof v === "number" ? parseSize(String(v)) : parseSize(v);
    });
  const reservedSpace = size("reserved_space", CONFIG_DEFAULTS.reservedSpace);
  const maxShareSize = size("max_share_size", CONFIG_DEFAULTS.maxShareSize);
  if (maxShareSize < 1) fail("storage.max_share_size", "must be at least 1 byte");
  const maxBodySize = size("max_body_size", CONFIG_DEFAULTS.maxBodySize);
  if (maxBodySize < 64 * 1024) fail("storage.max_body_size", "must be at least 64KiB");
  const mbs = st.max_batch_slots ?? CONFIG_DEFAULTS.maxBatchSlots;
  if (typeof mbs !== "number" || !Number.isSafeInteger(mbs) || mbs < 1 || mbs > 1_000_000) {
    fail("storage.max_batch_slots", "must be an integer 1..1000000");
  }
  const dur = (key: string, dflt: string) =>
    conv(`storage.${key}`, () => parseDuration(str(st, "storage", key, dflt)));
  const int = (key: string, dflt: number, min: number, max: number): number => {
    const v = st[key] ?? dflt;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
      fail(`storage.${key}`, `must be an integer ${min}..${max}`);
    }
    return v as number;
  };
  const maxConnections = int("max_connections", CONFIG_DEFAULTS.maxConnections, 1, 1_000_000);
  const maxConnectionsPerAddress = int(
    "max_connections_per_address",
    CONFIG_DEFAULTS.maxConnectionsPerAddress,
    1,
    1_000_000,
  );
  if (maxConnectionsPerAddress > maxConnections) {
    fail("storage.max_connections_per_address", "must not exceed storage.max_connections");
  }
  const config: StorageConfig = {
    nickname: nickname as string,
    listen,
    locations,
    reservedSpace,
    maxShareSize,
    maxBodySize,
    maxBatchSlots: mbs as number,
    leaseDuration: dur("lease_duration", CONFIG_DEFAULTS.leaseDuration),
    gcInterval: dur("gc_interval", CONFIG_DEFAULTS.gcInterval),
    ...parseGc(st, fail),
    incomingTimeout: dur("incoming_timeout", CONFIG_DEFAULTS.incomingTimeout),
    maxUploads: int("max_uploads", CONFIG_DEFAULTS.maxUploads, 1, 10_000_000),
    handshakeTimeout: dur("handshake_timeout", CONFIG_DEFAULTS.handshakeTimeout),
    requestTimeout: dur("request_timeout", CONFIG_DEFAULTS.requestTimeout),
    maxConnections,
    maxConnectionsPerAddress,
    refreshInterval: conv(
      "discovery.refresh_interval",
      () =>
        parseDuration(str(disc, "discovery", "refresh_interval", CONFIG_DEFAULTS.refreshInterval)),
    ),
  };
  const unknown = unreadKeys(raw, used, text);
  if (unknown.length) throw new ConfigError(describeUnknownKey(file, unknown[0]));
  return config;
}

/** `storage.gc` and `storage.gc_cutoff_date`. */
function parseGc(
  st: Record<string, unknown>,
  fail: (key: string, why: string) => never,
): { gc: GcMode; gcCutoffDate: number | null } {
  const gc = st.gc ?? CONFIG_DEFAULTS.gc;
  if (typeof gc !== "string" || !(GC_MODES as readonly string[]).includes(gc)) {
    return fail("storage.gc", `must be one of ${GC_MODES.map((m) => `"${m}"`).join(", ")}`);
  }
  const raw = st.gc_cutoff_date;
  if (gc !== "cutoff-date") {
    if (raw !== undefined) fail("storage.gc_cutoff_date", 'applies only with gc = "cutoff-date"');
    return { gc: gc as GcMode, gcCutoffDate: null };
  }
  // smol-toml reads an unquoted date as a date object; a quoted one is a string.
  const text = raw instanceof Date ? raw.toISOString().slice(0, 10) : raw;
  if (typeof text !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(text) || isNaN(Date.parse(text))) {
    return fail("storage.gc_cutoff_date", 'needs a date "YYYY-MM-DD" with gc = "cutoff-date"');
  }
  return { gc: "cutoff-date", gcCutoffDate: Date.parse(`${text}T00:00:00Z`) };
}

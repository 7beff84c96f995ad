/**
 * A storage node directory (docs/storage-node.md):
 *
 *   D/shoal.toml            configuration (readable, commented)
 *   D/tls-cert.pem          self-signed TLS certificate (public; its SPKI hash is the pin)
 *   D/private/tls-key.pem   TLS private key, PKCS#8 PEM, mode 0600
 *   D/private/swissnum      base32 swissnum and a newline, mode 0600
 *   D/storage/              the share store (lib/storage/store.ts)
 */
import { base32Decode, base32Encode } from "../../codec/mod.ts";
import {
  createStorageHandler,
  formatStorageUrl,
  generateTlsIdentity,
  MAX_LOCATION_HINTS,
  pinFromCertPem,
  serveStorage,
  sharedReadsReady,
  ShareStore,
  type StorageUrl,
  SWISSNUM_BYTES,
} from "../../storage/mod.ts";
import {
  ConfigError,
  describeGc,
  formatHostPort,
  parseConfig,
  parseHostPort,
  parseSize,
  renderConfig,
  type StorageConfig,
} from "./config.ts";
import { runAnnouncer } from "./announce.ts";
import { exists, writeFileAtomic } from "../nodefs.ts";
import { type MetricsListener, serveMetrics, StorageMetrics } from "../../metrics/storage.ts";
import { VERSION } from "../../version.ts";

export const CONFIG_FILE = "shoal.toml";
export const CERT_FILE = "tls-cert.pem";
export const PRIVATE_DIR = "private";
export const KEY_FILE = "private/tls-key.pem";
export const SWISSNUM_FILE = "private/swissnum";
export const STORE_DIR = "storage";

/** The directory already holds a node, or holds none: exit code 1 with this message. */
export class NodeDirError extends Error {
  override name = "NodeDirError";
}

export interface CreateStorageNodeOptions {
  dir: string;
  /** HOST:PORT to listen on. */
  listen: string;
  /** HOST:PORT location hints; default: the listen address. */
  locations?: string[];
  nickname?: string;
  /** Size text such as "0", "500M", "10G" (default "1G"). */
  reservedSpace?: string;
  /** HOST:PORT for the plain-HTTP /metrics listener ([metrics] listen); default: none. */
  metricsListen?: string;
}

export interface StorageNode {
  dir: string;
  config: StorageConfig;
  certPem: string;
  keyPem: string;
  swissnum: Uint8Array;
  pin: Uint8Array;
}

/** Create a new storage node directory; refuses if `dir` already holds a node. */
export async function createStorageNode(opts: CreateStorageNodeOptions): Promise<StorageNode> {
  const dir = opts.dir.replace(/\/+$/, "") || "/";
  const listen = formatHostPort(parseHostPort(opts.listen));
  const locations = (opts.locations?.length ? opts.locations : [listen]).map((l) =>
    formatHostPort(parseHostPort(l))
  );
  if (locations.length > MAX_LOCATION_HINTS) {
    throw new ConfigError(`at most ${MAX_LOCATION_HINTS} locations fit in a storage URL`);
  }
  const reservedSpace = opts.reservedSpace ?? "1G";
  const metricsListen = opts.metricsListen === undefined
    ? null
    : formatHostPort(parseHostPort(opts.metricsListen));
  parseSize(reservedSpace);
  for (const f of [CONFIG_FILE, PRIVATE_DIR, STORE_DIR]) {
    if (await exists(`${dir}/${f}`)) {
      throw new NodeDirError(
        `${dir} already holds a node (${dir}/${f} exists); choose another --dir`,
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(`${dir}/${PRIVATE_DIR}`, { mode: 0o700 });
  await Deno.chmod(`${dir}/${PRIVATE_DIR}`, 0o700);

  const hosts = [...new Set([listen, ...locations].map((hp) => parseHostPort(hp).host))];
  const tls = await generateTlsIdentity(hosts);
  const swissnum = crypto.getRandomValues(new Uint8Array(SWISSNUM_BYTES));
  await writeFileAtomic(`${dir}/${KEY_FILE}`, tls.keyPem, 0o600);
  await writeFileAtomic(`${dir}/${SWISSNUM_FILE}`, base32Encode(swissnum) + "\n", 0o600);
  await writeFileAtomic(`${dir}/${CERT_FILE}`, tls.certPem, 0o644);
  // The config is written last: its presence marks a complete node.
  const text = renderConfig({
    nickname: opts.nickname ?? "",
    listen,
    locations,
    reservedSpace,
    metricsListen,
  });
  await writeFileAtomic(`${dir}/${CONFIG_FILE}`, text, 0o644);
  return {
    dir,
    config: parseConfig(text),
    certPem: tls.certPem,
    keyPem: tls.keyPem,
    swissnum,
    pin: tls.pin,
  };
}

/** Load a storage node directory; ConfigError / NodeDirError say precisely what is wrong. */
export async function loadStorageNode(dir: string): Promise<StorageNode> {
  dir = dir.replace(/\/+$/, "") || "/";
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${CONFIG_FILE}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NodeDirError(
        `${dir} holds no node (no ${CONFIG_FILE}); create one with 'shoal storage create'`,
      );
    }
    throw e;
  }
  const config = parseConfig(text, `${dir}/${CONFIG_FILE}`);
  const read = async (f: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${f}`);
    } catch (e) {
      throw new NodeDirError(`cannot read ${dir}/${f}: ${(e as Error).message}`);
    }
  };
  const certPem = await read(CERT_FILE);
  const keyPem = await read(KEY_FILE);
  const swissText = (await read(SWISSNUM_FILE)).trim();
  let swissnum: Uint8Array;
  try {
    swissnum = base32Decode(swissText);
  } catch {
    swissnum = new Uint8Array(0);
  }
  if (swissnum.length !== SWISSNUM_BYTES) {
    throw new NodeDirError(
      `${dir}/${SWISSNUM_FILE} must hold the base32 of ${SWISSNUM_BYTES} bytes`,
    );
  }
  let pin: Uint8Array;
  try {
    pin = pinFromCertPem(certPem);
  } catch (e) {
    throw new NodeDirError(
      `${dir}/${CERT_FILE} is not a usable certificate: ${(e as Error).message}`,
    );
  }
  return { dir, config, certPem, keyPem, swissnum, pin };
}

export function storageUrlOf(node: StorageNode): StorageUrl {
  return { pin: node.pin, swissnum: node.swissnum, locations: node.config.locations };
}

export function storageUrlText(node: StorageNode): string {
  return formatStorageUrl(storageUrlOf(node));
}

export interface RunOptions {
  /** Abort to shut down (stop accepting, let in-flight requests finish up to graceMs). */
  signal: AbortSignal;
  onListen?: (addr: { hostname: string; port: number }) => void;
  /** Operational messages (never secrets). */
  log?: (line: string) => void;
  graceMs?: number;
}

/** Serve a storage node until `signal` aborts. */
export async function runStorageNode(node: StorageNode, opts: RunOptions): Promise<void> {
  const c = node.config;
  const log = opts.log ?? ((l: string) => console.error(l));
  const store = await ShareStore.open({
    root: `${node.dir}/${STORE_DIR}`,
    reservedSpace: c.reservedSpace,
    maxShareSize: c.maxShareSize,
    leaseDuration: c.leaseDuration,
    incomingTimeout: c.incomingTimeout,
    maxUploads: c.maxUploads,
  });
  // A reserved space above the free disk space refuses every allocation: say so now.
  try {
    const free = await store.freeDiskSpace();
    if (c.reservedSpace > free) {
      log(
        `warning: storage.reserved_space (${c.reservedSpace} bytes) exceeds the free disk space ` +
          `(${free} bytes): every upload will be refused until space is freed or reserved_space lowered`,
      );
    }
  } catch (e) {
    log(`warning: cannot read the free disk space: ${(e as Error).message}`);
  }
  const metrics = c.metricsListen
    ? new StorageMetrics(store, { software: `shoal/${VERSION}` })
    : undefined;
  const handler = createStorageHandler(store, {
    swissnum: node.swissnum,
    serverId: node.pin,
    maxBodySize: c.maxBodySize,
    maxBatchSlots: c.maxBatchSlots,
    log,
    metrics,
  });
  // Connections are read through one shared buffer once this check has passed (tls_reads.ts).
  await sharedReadsReady();
  if (opts.signal.aborted) return;
  let server;
  try {
    server = serveStorage({
      hostname: c.listen.host,
      port: c.listen.port,
      certPem: node.certPem,
      keyPem: node.keyPem,
      handler,
      log,
      limits: {
        handshakeTimeoutMs: c.handshakeTimeout * 1000,
        headTimeoutMs: c.requestTimeout * 1000,
        maxConnections: c.maxConnections,
        maxConnectionsPerAddress: c.maxConnectionsPerAddress,
      },
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(
        `storage.listen: ${
          formatHostPort(c.listen)
        } is already in use; stop the other process or change the port`,
      );
    }
    throw new ConfigError(
      `storage.listen: cannot listen on ${formatHostPort(c.listen)}: ${(e as Error).message}`,
    );
  }
  let metricsServer: MetricsListener | null = null;
  if (metrics && c.metricsListen) {
    metrics.trackConnections(() => server.connections());
    try {
      metricsServer = serveMetrics(metrics.registry, c.metricsListen);
    } catch (e) {
      await server.shutdown(0);
      throw new ConfigError(
        `metrics.listen: cannot listen on ${formatHostPort(c.metricsListen)}: ${
          (e as Error).message
        }`,
      );
    }
    const a = metricsServer.addr;
    log(
      `metrics at http://${
        a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname
      }:${a.port}/metrics`,
    );
  }
  opts.onListen?.(server.addr);
  // Once joined to a grid: keep this server's announcement published everywhere.
  const announcer = runAnnouncer(node, store, opts.signal, log);
  let gcRunning: Promise<void> | null = null;
  log(describeGc(c));
  const gcOptions = {
    expire: c.gc !== "off",
    expiredBefore: c.gcCutoffDate === null ? undefined : c.gcCutoffDate + c.leaseDuration * 1000,
  };
  const timer = setInterval(() => {
    if (gcRunning) return;
    gcRunning = store.gc(gcOptions).then(
      (r) => {
        metrics?.gcRuns.inc({ outcome: "ok" });
        metrics?.gcRemoved.inc(undefined, r.removed);
        if (r.removed > 0) {
          log(`garbage collection removed ${r.removed} storage index(es) whose leases expired`);
        }
      },
      (e) => {
        metrics?.gcRuns.inc({ outcome: "failed" });
        log(`garbage collection failed: ${(e as Error).message}`);
      },
    ).finally(() => (gcRunning = null));
  }, c.gcInterval * 1000);
  // Uploads that stopped receiving data are reclaimed within a fraction of incoming_timeout.
  const sweep = setInterval(() => {
    store.expireUploads().then(
      (n) => {
        if (n > 0) log(`dropped ${n} upload(s) that received no data for ${c.incomingTimeout}s`);
      },
      (e) => log(`dropping stalled uploads failed: ${(e as Error).message}`),
    );
  }, Math.max(1, Math.min(60, c.incomingTimeout / 4)) * 1000);
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) resolve();
    else opts.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  clearInterval(timer);
  clearInterval(sweep);
  await server.shutdown(opts.graceMs ?? 10_000);
  await metricsServer?.close();
  // The announcer closes its connections on abort; don't let a slow one hold the exit.
  let grace: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([announcer, new Promise((r) => (grace = setTimeout(r, 2000)))]);
  clearTimeout(grace);
  if (gcRunning) await gcRunning;
}

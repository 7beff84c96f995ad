/**
 * What every grid-using role (operator, storage server announcing itself,
 * client) shares: its introduction text, discovery state, lease secret, and a
 * Grid over the servers it knows.
 */
import { base32Encode } from "../codec/mod.ts";
import {
  ClientPool,
  type DiscoveryState,
  emptyState,
  formatIntroductionText,
  type IntroductionText,
  parseDiscoveryState,
  parseIntroductionText,
  recordedStorageUrls,
  refreshDiscovery,
  type RefreshOptions,
  type RefreshResult,
} from "../discovery/mod.ts";
import { Grid, type MutableEncoding, ServerList } from "../grid/mod.ts";
import type { StorageUrl } from "../storage/mod.ts";
import { loadOrCreateSecret, readTextOrNull, writePrivate } from "./nodefs.ts";

export const INTRODUCTION_FILE = "private/introduction-text";
export const DISCOVERY_FILE = "private/servers.json";
export const LEASE_SECRET_FILE = "private/lease-secret";

export class GridNode {
  readonly pool: ClientPool;
  #state: DiscoveryState;

  constructor(
    readonly dir: string,
    readonly intro: IntroductionText,
    state: DiscoveryState,
    readonly leaseSecret: Uint8Array,
    timeoutMs?: number,
  ) {
    this.#state = state;
    this.pool = new ClientPool({ timeoutMs });
  }

  static async load(dir: string, opts: { timeoutMs?: number } = {}): Promise<GridNode | null> {
    const text = await readTextOrNull(`${dir}/${INTRODUCTION_FILE}`);
    if (text === null) return null;
    const intro = parseIntroductionText(text);
    const json = await readTextOrNull(`${dir}/${DISCOVERY_FILE}`);
    let state: DiscoveryState;
    try {
      state = json === null ? emptyState() : parseDiscoveryState(json);
    } catch (e) {
      throw new Error(
        `${dir}/${DISCOVERY_FILE} (the recorded server list) is damaged: ${
          (e as Error).message
        }. It is only a cache: remove it, and the next command rebuilds it from the grid`,
      );
    }
    const leaseSecret = await loadOrCreateSecret(`${dir}/${LEASE_SECRET_FILE}`);
    return new GridNode(dir, intro, state, leaseSecret, opts.timeoutMs);
  }

  /** Record an introduction text (validated) in the node directory. */
  static async recordIntroduction(dir: string, text: string): Promise<IntroductionText> {
    const intro = parseIntroductionText(text);
    await writePrivate(`${dir}/${INTRODUCTION_FILE}`, formatIntroductionText(intro) + "\n");
    return intro;
  }

  get state(): DiscoveryState {
    return this.#state;
  }

  /** Join/refresh now and record the result (atomic write). */
  async refresh(opts: RefreshOptions = {}): Promise<RefreshResult> {
    const result = await refreshDiscovery(this.intro, this.#state, this.pool, opts);
    await this.saveState(result.state);
    return result;
  }

  async saveState(state: DiscoveryState): Promise<void> {
    this.#state = state;
    await writePrivate(`${this.dir}/${DISCOVERY_FILE}`, JSON.stringify(state, null, 2) + "\n");
  }

  /** Storage URLs of every known server: recorded ones, then the introduction text's. */
  knownUrls(extra: StorageUrl[] = []): StorageUrl[] {
    const seen = new Set<string>();
    const out: StorageUrl[] = [];
    for (
      const u of [
        ...recordedStorageUrls(this.#state).map((r) => r.url),
        ...this.intro.storageUrls,
        ...extra,
      ]
    ) {
      const k = base32Encode(u.pin);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(u);
      }
    }
    return out;
  }

  /** A Grid over the given URLs (default: every known server). */
  grid(urls: StorageUrl[] = this.knownUrls(), encoding: MutableEncoding = "everywhere"): Grid {
    const nick = new Map(this.#state.servers.map((s) => [s.serverId, s.nickname]));
    const servers = new ServerList(
      urls.map((u) => this.pool.server(u, nick.get(base32Encode(u.pin)))),
    );
    return new Grid({ servers, leaseSecret: this.leaseSecret, mutableEncoding: encoding });
  }

  close(): void {
    this.pool.close();
  }
}

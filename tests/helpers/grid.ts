/**
 * A grid of real storage server processes on loopback for tests, and a Grid
 * (lib/grid) over any subset of them.
 */
import { ClientPool } from "../../lib/discovery/mod.ts";
import { Grid, type MutableEncoding, ServerList } from "../../lib/grid/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import {
  type CreatedNode,
  createStorageNode,
  startStorageServer,
  type StorageProcess,
} from "./storage_process.ts";

export interface TestServer {
  node: CreatedNode;
  url: string;
  proc: StorageProcess | null;
}

export class TestGrid {
  readonly pools: ClientPool[] = [];
  constructor(readonly servers: TestServer[], readonly root: string) {}

  static async start(n: number, opts: { nicknamePrefix?: string } = {}): Promise<TestGrid> {
    const root = await Deno.makeTempDir({ prefix: "shoal-grid-" });
    const nodes = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          createStorageNode({
            dir: `${root}/s${i}`,
            nickname: `${opts.nicknamePrefix ?? "s"}${i}`,
          }),
      ),
    );
    const procs = await Promise.all(nodes.map((nd) => startStorageServer(nd.dir)));
    return new TestGrid(
      nodes.map((node, i) => ({ node, url: procs[i].url, proc: procs[i] })),
      root,
    );
  }

  urls(indices?: number[]): string[] {
    return (indices ?? this.servers.map((_, i) => i)).map((i) => this.servers[i].url);
  }

  /** A Grid over the servers at `indices` (default all), with a fresh lease secret. */
  grid(indices?: number[], encoding: MutableEncoding = { k: 3, n: 10 }): Grid {
    const pool = new ClientPool({ timeoutMs: 5000 });
    this.pools.push(pool);
    const servers = new ServerList(this.urls(indices).map((u) => pool.server(parseStorageUrl(u))));
    return new Grid({ servers, leaseSecret: randomBytes(32), mutableEncoding: encoding });
  }

  async stop(i: number): Promise<void> {
    const p = this.servers[i].proc;
    this.servers[i].proc = null;
    if (p) await p.stop();
  }

  async restart(i: number): Promise<void> {
    if (this.servers[i].proc) return;
    this.servers[i].proc = await startStorageServer(this.servers[i].node.dir);
  }

  /** Path of the mutable slot directory on server i. */
  slotDir(i: number, storageIndexB32: string): string {
    return `${this.servers[i].node.dir}/storage/mutable/${
      storageIndexB32.slice(0, 2)
    }/${storageIndexB32}`;
  }

  async close(): Promise<void> {
    for (const p of this.pools) p.close();
    await Promise.all(this.servers.map((s) => s.proc?.stop()));
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

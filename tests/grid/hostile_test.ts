/**
 * The client against hostile and slow servers (issue 11: findings 1, 4, 9),
 * through tests/helpers/hostile.ts: real storage processes behind a
 * misbehaving TLS proxy, and a blackholed TCP port.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { Grid, ServerList } from "../../lib/grid/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import {
  parseStorageUrl,
  StorageClient,
  StorageDeadlineError,
} from "../../lib/storage/mod.ts";
import { TestGrid } from "../helpers/grid.ts";
import { HostileProxy, tcpBlackhole, urlAt } from "../helpers/hostile.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Reject if `p` takes longer than `ms` (the bound a test asserts; not a race it hopes to win). */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t0 = performance.now();
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    console.log(`${what}: ${Math.round(performance.now() - t0)} ms`);
  }
}

Deno.test("a trickling server: every request ends at its absolute deadline", opts, async () => {
  const g = await TestGrid.start(1);
  const proxy = await HostileProxy.start(g.servers[0].node.dir, g.servers[0].url);
  const client = new StorageClient(parseStorageUrl(proxy.url), {
    timeoutMs: 1000,
    deadlineMs: 2000,
  });
  try {
    // Honest pass-through first: the proxy is transparent.
    assertEquals((await client.version()).protocol > 0, true);
    proxy.rule = () => ({ drip: { intervalMs: 200 } });
    const t0 = performance.now();
    await assertRejects(() => client.version(), StorageDeadlineError);
    const took = performance.now() - t0;
    assert(took < 4000, `the deadline held (${took} ms)`);
    proxy.rule = null;
    assertEquals((await client.listImmutable(randomBytes(16))).length, 0);
  } finally {
    client.close();
    await proxy.close();
    await g.close();
  }
});

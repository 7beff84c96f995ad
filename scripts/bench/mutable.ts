/**
 * Bench section `mutable` (issue 4): mutable files and directories on real
 * storage servers on loopback (scripts/bench/harness.ts starts them, several
 * per process; the layout is printed). Beside each figure: its target, and the
 * raw baselines measured in the same run (Ed25519 keygen/sign/verify, loopback
 * TLS round trips) plus the storage-protocol floor of the same I/O.
 *
 * - create + publish of a 1 KiB mutable file, 3-of-10 on 10 servers: median and
 *   p95 over ITER files (target: median < 20 ms); overwrite (map + publish) and
 *   retrieve (readcap) of the same files;
 * - publish (create) and retrieve (readcap, list) of a 1 MiB directory of
 *   ~4,000 entries with k = 1 on 10, 100 and 250 servers ("everywhere": one
 *   full share on every server), DIR_ROUNDS rounds each.
 *
 *   deno task bench mutable
 */
import { ClientPool } from "../../lib/discovery/mod.ts";
import {
  CHECKSTRING_SIZE,
  type DirEntry,
  encodeDirectory,
  encodeVersion,
  Grid,
  ServerList,
  writeKeysFromSeed,
} from "../../lib/grid/mod.ts";
import { formatCap, parseCap, randomBytes, readcapOf } from "../../lib/crypto/mod.ts";
import type { StorageUrl } from "../../lib/storage/mod.ts";
import {
  type BenchServers,
  kb,
  line,
  machineLine,
  median,
  medP95,
  printBaselines,
  rawBaselines,
  startServers,
  timed,
} from "./harness.ts";
import type { BenchSection } from "./sections.ts";
import { freshSlot } from "./slots.ts";

const ITER = 60;
const DIR_ROUNDS = 3;
const DIR_BYTES = 1024 * 1024;
const DIR_SIZES = [10, 100, 250];

function gridOver(pool: ClientPool, urls: StorageUrl[], encoding: Grid["mutableEncoding"]): Grid {
  return new Grid({
    servers: new ServerList(urls.map((u) => pool.server(u))),
    leaseSecret: randomBytes(32),
    mutableEncoding: encoding,
  });
}

/** Directory entries (real caps, writecaps included) adding up to about `bytes` encoded. */
async function directoryEntries(bytes: number): Promise<DirEntry[]> {
  const now = Math.floor(Date.now() / 1000);
  const make = async (i: number): Promise<DirEntry> => {
    const writecap = formatCap({ kind: "mutable-write", seed: randomBytes(32) });
    return {
      name: `file-${String(i).padStart(6, "0")}.txt`,
      readcap: formatCap(await readcapOf(parseCap(writecap))),
      writecap,
      metadata: { ctime: now, mtime: now },
    };
  };
  const sample = await Promise.all(Array.from({ length: 100 }, (_, i) => make(i)));
  const per = (await encodeDirectory(sample, randomBytes(32))).length / 100;
  const n = Math.floor(bytes / per);
  return await Promise.all(Array.from({ length: n }, (_, i) => make(i)));
}

async function oneKiB(servers: BenchServers, floors: boolean): Promise<void> {
  const pool = new ClientPool({ timeoutMs: 30_000 });
  try {
    const urls = servers.parsed.slice(0, 10);
    const grid = gridOver(pool, urls, { k: 3, n: 10 });
    const data = () => randomBytes(1024);
    // Floors measured in this run: the client-side CPU work, and the storage I/O publish does.
    if (floors) {
      const cpu = await timed(ITER, async () => {
        const keys = await writeKeysFromSeed(randomBytes(32));
        const v = await encodeVersion(keys, data(), 1, randomBytes(16), 3, 10);
        for (let i = 0; i < 10; i++) v.share(i);
      });
      line("floor: keygen + encrypt + encode + sign (no I/O)", medP95(cpu));
      const clients = urls.map((u) => pool.server(u).storage);
      const secrets = {
        writeEnabler: randomBytes(32),
        leaseRenew: randomBytes(32),
        leaseCancel: randomBytes(32),
      };
      const shareBytes = (await encodeVersion(
        await writeKeysFromSeed(randomBytes(32)),
        data(),
        1,
        randomBytes(16),
        3,
        10,
      ))
        .share(0).length;
      // New slots made before timing (each first write carries its creation proof).
      const ids = urls.map((u) => pool.server(u).serverId);
      const slotPools = await Promise.all(
        ids.map((id) =>
          Promise.all(
            Array.from({ length: ITER + 5 }, () => freshSlot(id, secrets.writeEnabler)),
          )
        ),
      );
      const next = async (i: number) =>
        slotPools[i].pop() ?? await freshSlot(ids[i], secrets.writeEnabler);
      const rtw = await timed(
        ITER,
        () =>
          Promise.all(clients.map(async (c, i) => {
            const slot = await next(i);
            return c.readTestWrite(slot.si, { ...secrets, slotProof: slot.proof }, {
              testWriteVectors: [{
                share: 0,
                test: [{ offset: 0, size: CHECKSTRING_SIZE, specimen: new Uint8Array(0) }],
                write: [{ offset: 0, data: randomBytes(shareBytes) }],
                newLength: shareBytes,
              }],
              readVector: [{ offset: 0, size: CHECKSTRING_SIZE }],
            });
          })),
      );
      line(`floor: 10 parallel read-test-writes of ${shareBytes} B (fsync)`, medP95(rtw));
      const slot = randomBytes(16);
      const br = await timed(
        ITER,
        () =>
          Promise.all(clients.map((c) =>
            c.batchRead({
              slots: [{ storageIndex: slot, shares: null, ranges: [{ offset: 0, size: 4096 }] }],
            })
          )),
      );
      line("floor: 10 parallel batch-reads (1 slot)", medP95(br));
    }

    for (let i = 0; i < 5; i++) await grid.createMutableFile(data()); // warm up
    const caps: string[] = [];
    const create = await timed(ITER, async () => {
      caps.push((await grid.createMutableFile(data())).writecap);
    });
    const med = median(create);
    line(
      "create + publish",
      medP95(create),
      `target median < 20 ms: ${med < 20 ? "met" : "MISSED"}`,
    );
    const over = await timed(ITER, (i) => grid.writeMutable(caps[i], data()));
    line("overwrite (map + publish version 2)", medP95(over));
    const readcaps = await Promise.all(
      caps.map(async (c) => formatCap(await readcapOf(parseCap(c)))),
    );
    const read = await timed(ITER, (i) => grid.readMutable(readcaps[i]));
    line("retrieve (readcap)", medP95(read));
  } finally {
    pool.close();
  }
}

async function directory(
  servers: BenchServers,
  m: number,
  entries: DirEntry[],
  size: number,
): Promise<void> {
  const pool = new ClientPool({ timeoutMs: 120_000 });
  try {
    const grid = gridOver(pool, servers.parsed.slice(0, m), "everywhere");
    // Warm the connections (one small everywhere object).
    await grid.createMutableFile(new Uint8Array(16));
    const caps: string[] = [];
    const pub = await timed(DIR_ROUNDS, async () => {
      caps.push(await grid.createDirectory(entries, "everywhere"));
    });
    const mbs = (t: number) => `${(size * m / 1e6 / (t / 1000)).toFixed(0)} MB/s stored in total`;
    line(`${m} servers: publish (create), k = 1, n = ${m}`, medP95(pub), mbs(median(pub)));
    const readcaps = await Promise.all(
      caps.map(async (c) => formatCap(await readcapOf(parseCap(c)))),
    );
    let listed = 0;
    const read = await timed(DIR_ROUNDS, async (i) => {
      listed = (await grid.listDirectory(readcaps[i])).entries.length;
    });
    if (listed !== entries.length) {
      throw new Error(`listed ${listed} entries, published ${entries.length}`);
    }
    line(`${m} servers: retrieve + list (readcap)`, medP95(read));
  } finally {
    pool.close();
  }
}

async function run(): Promise<void> {
  console.log(`machine: ${machineLine()}`);
  printBaselines(await rawBaselines());

  const servers = await startServers(Math.max(...DIR_SIZES));
  try {
    console.log(servers.describe());
    console.log("(subsets below take the first m stores, spread evenly over the processes)");
    console.log(`1 KiB mutable file, 3-of-10 on 10 servers, ${ITER} files (median / p95):`);
    await oneKiB(servers, true);

    const entries = await directoryEntries(DIR_BYTES);
    const size = (await encodeDirectory(entries, randomBytes(32))).length;
    console.log(
      `directory of ${entries.length} entries (readcap + encrypted writecap + metadata each), ` +
        `${kb(size)} encoded; median / p95 of ${DIR_ROUNDS} rounds:`,
    );
    for (const m of DIR_SIZES) await directory(servers, m, entries, size);
  } finally {
    await servers.close();
  }

  // Before: the same storage handler on the old Deno.serve stack, which left TCP_NODELAY off.
  const fixed = await startServers(10, { serve: "deno-serve" });
  try {
    console.log(`before (Deno.serve, no TCP_NODELAY), ${fixed.describe()}:`);
    await oneKiB(fixed, false);
  } finally {
    await fixed.close();
  }
}

export const section: BenchSection = {
  name: "mutable",
  title: "mutable files and directories on loopback storage servers (issue 4)",
  run,
};

if (import.meta.main) await run();

/**
 * Bench section `lab` (issue 14): Shoal where round trips cost milliseconds. A real grid in the
 * network lab (scripts/lab/, docs/lab.md): 10 storage server hosts, an operator host and a client
 * host, each a network namespace with a 100 Mbit/s link both ways (tbf), every path delayed by the
 * hosts' relays, for round trips of 10, 50 and 150 ms. Every Shoal figure comes from the `shoal`
 * command line run in the client's namespace, beside the lab's raw baseline measured in the same
 * run over the same links: TLS round trips, and bulk TLS transfers from the client to all 10
 * servers and back (scripts/lab/bulk.ts).
 *
 * - join: a fresh node (`client create-node`, `client servers --refresh`); on the connection to
 *   the first server: client-to-server bursts counted by that server's relay (the TLS handshake's
 *   ClientHello excluded: each further burst waited for an answer, so it is a round trip), and
 *   the time from its first byte to its last answer in round trips. Target: <= 4 after TLS.
 * - mutable publish (`client put --mutable` of 1 KiB, k-of-n 3-of-10 on 10 servers) and retrieve
 *   (`client get` of its readcap): round trips on the busiest server connection beyond the TLS
 *   handshake. Targets <= 2 and <= 1.
 * - immutable put and get of `--mb` MiB (default 256) at 3-of-10, happy 7: MB/s on the wire
 *   (put: size × n / k through the client's uplink; get: size through its downlink) as a
 *   percentage of the raw baseline. Target >= 80 %. The command's time includes its process
 *   start (~0.5-1 s).
 *
 * Burst counts are upper bounds: the calibration row (10 sequential TLS round trips) reads 11 when
 * the first request leaves after the server's TLS session tickets arrived, which splits it from
 * the handshake's Finished; the same can add one to any figure.
 *
 * The lab's TCP handshakes are not delayed (the relay delays bytes, not SYNs): a real network adds
 * one round trip per new connection on top of the figures here.
 *
 *   deno task bench lab [--rtt 10,50,150] [--mb 256] [--mbit 100]
 * Needs root (network namespaces); skipped with a message elsewhere.
 */
import { parseArgs } from "node:util";
import type { BenchSection } from "./sections.ts";
import { BULK_PORT, LabGrid } from "../lab/grid.ts";
import { labUnavailable } from "../lab/netns.ts";
import { machineLine } from "./harness.ts";

const BULK = new URL("../lab/bulk.ts", import.meta.url).pathname;
const MB = 1e6;

interface ConnStat {
  peer: string;
  port: number;
  opened: number;
  turns: number;
  up: number;
  down: number;
  firstUp: number | null;
  lastDown: number | null;
}

function row(label: string, value: string, note = ""): void {
  console.log(`  ${label.padEnd(60)} ${value.padStart(16)}${note ? `  ${note}` : ""}`);
}

async function relayStats(g: LabGrid, i: number): Promise<ConnStat[]> {
  const h = g.lab.host(g.servers[i].host);
  return JSON.parse(await h.relay!.ask(JSON.stringify({ stats: true }), "stats ")) as ConnStat[];
}

/** The client's connections to each server opened since `since` (wall-clock ms). */
async function clientConns(g: LabGrid, since: number): Promise<ConnStat[][]> {
  const c = g.clients[0];
  return await Promise.all(
    g.servers.map(async (_, i) =>
      (await relayStats(g, i)).filter((x) =>
        x.peer === c.address && x.port === 7001 && x.opened >= since - 5
      )
    ),
  );
}

async function bulk(g: LabGrid, args: string[]): Promise<Record<string, number>> {
  const p = g.lab.spawnDeno("c0", BULK, args);
  const s = await p.status;
  if (s.code !== 0) throw new Error(`bulk ${args.join(" ")} failed: ${p.stderr().slice(-1000)}`);
  return JSON.parse(p.lines.find((l) => l.startsWith("{"))!);
}

/** Round trips on one connection: (relay-counted bursts - 1 for the ClientHello, by time). */
function trips(c: ConnStat, rtt: number): { bursts: number; byTime: number } {
  return {
    bursts: c.turns - 1,
    byTime: c.firstUp !== null && c.lastDown !== null ? (c.lastDown - c.firstUp) / rtt - 1 : NaN,
  };
}

async function runLab(opts: { rtts: number[]; mib: number; mbit: number }): Promise<void> {
  console.log(machineLine());
  const why = await labUnavailable();
  if (why) {
    console.log(`  skipped: ${why}`);
    return;
  }
  const t0 = performance.now();
  const g = await LabGrid.start({
    servers: 10,
    clients: 1,
    delayMs: 0,
    rateMbit: opts.mbit,
    // One day: no command refreshes its server list first during the bench (a refresh would add
    // one request to one server's connection), and no server's discovery traffic interferes.
    refreshInterval: 86400,
    shares: { k: 3, n: 10, happy: 7 },
  });
  try {
    console.log(
      `grid: 10 storage server hosts, an operator host, a client host; ${opts.mbit} Mbit/s ` +
        `per host both ways; 3-of-10 (happy 7); built in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s`,
    );
    const c = g.clients[0];
    const bulkTargets = g.servers.map((s) => `${s.address}:${BULK_PORT}`).join(",");
    const file = `${g.root}/big.bin`;
    {
      const f = await Deno.open(file, { write: true, create: true });
      const block = new Uint8Array(1 << 20);
      for (let i = 0; i < opts.mib; i++) {
        for (let o = 0; o < block.length; o += 65536) {
          crypto.getRandomValues(block.subarray(o, o + 65536));
        }
        let w = 0;
        while (w < block.length) w += await f.write(block.subarray(w));
      }
      f.close();
    }
    await Deno.writeFile(`${g.root}/small.bin`, crypto.getRandomValues(new Uint8Array(1024)));
    for (const rtt of opts.rtts) {
      await g.lab.setDelay(rtt / 2);
      console.log(`\n-- round trip ${rtt} ms (relay delay ${rtt / 2} ms each way) --`);
      // Raw baselines.
      const before = performance.timeOrigin + performance.now();
      const r = await bulk(g, ["--mode", "rtt", "--to", `${g.servers[0].address}:${BULK_PORT}`]);
      row(
        "raw: TLS round trip, 1 byte, client -> s0 (median of 10)",
        `${r.medianMs.toFixed(1)} ms`,
      );
      // Calibration of the burst count: those 10 sequential round trips must count 10.
      const cal = (await relayStats(g, 0)).filter((x) =>
        x.peer === c.address && x.port === BULK_PORT && x.opened >= before - 5
      );
      row(
        "raw: bursts counted for those 10 round trips (calibration)",
        cal.map((x) => String(x.turns - 1)).join(",") || "?",
        "must be 10",
      );
      const rawBytes = Math.min(opts.mib * 1024 * 1024, 128 * 1024 * 1024);
      const up = await bulk(g, ["--mode", "up", "--to", bulkTargets, "--bytes", String(rawBytes)]);
      const down = await bulk(g, [
        "--mode",
        "down",
        "--to",
        bulkTargets,
        "--bytes",
        String(rawBytes),
      ]);
      row(
        `raw: bulk TLS client -> 10 servers, ${(rawBytes / MB).toFixed(0)} MB`,
        `${up.MBps.toFixed(2)} MB/s`,
        `(tbf rate ${(opts.mbit / 8).toFixed(2)} MB/s)`,
      );
      row(
        `raw: bulk TLS 10 servers -> client, ${(rawBytes / MB).toFixed(0)} MB`,
        `${down.MBps.toFixed(2)} MB/s`,
      );
      const measured = r.medianMs;

      // Join.
      const jdir = `${g.root}/join-${rtt}`;
      let since = performance.timeOrigin + performance.now();
      await g.shoalOk("c0", [
        "client",
        "create-node",
        "--dir",
        jdir,
        "--introducer-v3",
        g.introText,
        "--refresh-interval",
        "86400",
      ]);
      since = performance.timeOrigin + performance.now();
      const j = await g.shoal("c0", ["client", "servers", "--dir", jdir, "--refresh"]);
      if (j.code !== 0) throw new Error(`join failed: ${j.stderr}`);
      const jc = (await clientConns(g, since)).flat().filter((x) => x.firstUp !== null);
      jc.sort((a, b) => a.firstUp! - b.firstUp!);
      const first = jc[0];
      const ft = trips(first, measured);
      row(
        "join: round trips to the first server after TLS (bursts / by time)",
        `${ft.bursts} / ${ft.byTime.toFixed(1)}`,
        `target <= 4; ${jc.length} server connection(s); command ${j.ms.toFixed(0)} ms`,
      );

      // Mutable publish and retrieve, 1 KiB.
      since = performance.timeOrigin + performance.now();
      const pub = await g.shoal("c0", [
        "client",
        "put",
        "--dir",
        c.dir,
        "--mutable",
        `${g.root}/small.bin`,
      ]);
      if (pub.code !== 0) throw new Error(`mutable put failed: ${pub.stderr}`);
      const pc = (await clientConns(g, since)).flat().filter((x) => x.firstUp !== null);
      const pMax = Math.max(...pc.map((x) => trips(x, measured).bursts));
      const pTime = Math.max(...pc.map((x) => trips(x, measured).byTime));
      row(
        "mutable publish 1 KiB, 10 servers: round trips after TLS (bursts / time)",
        `${pMax} / ${pTime.toFixed(1)}`,
        `target <= 2; ${pc.length} connection(s); command ${pub.ms.toFixed(0)} ms`,
      );
      const writecap = pub.stdout.trim();
      since = performance.timeOrigin + performance.now();
      const ret = await g.shoal("c0", ["client", "get", "--dir", c.dir, writecap, `${g.root}/o1`]);
      if (ret.code !== 0) throw new Error(`mutable get failed: ${ret.stderr}`);
      const rc = (await clientConns(g, since)).flat().filter((x) => x.firstUp !== null);
      const rMax = Math.max(...rc.map((x) => trips(x, measured).bursts));
      const rTime = Math.max(...rc.map((x) => trips(x, measured).byTime));
      row(
        "mutable retrieve 1 KiB: round trips after TLS (bursts / time)",
        `${rMax} / ${rTime.toFixed(1)}`,
        `target <= 1; ${rc.length} connection(s); command ${ret.ms.toFixed(0)} ms`,
      );

      // Immutable put and get.
      const size = opts.mib * 1024 * 1024;
      // --no-convergence: a fresh storage index each round (the same file is uploaded again).
      const sincePut = performance.timeOrigin + performance.now();
      const put = await g.shoal("c0", ["client", "put", "--dir", c.dir, "--no-convergence", file], {
        timeoutMs: 1_800_000,
      });
      if (put.code !== 0) throw new Error(`immutable put failed: ${put.stderr}`);
      const wire = size * 10 / 3;
      const putMBps = wire / put.ms / 1000;
      row(
        `immutable put ${opts.mib} MiB 3-of-10: uplink MB/s (shares)`,
        `${putMBps.toFixed(2)} MB/s`,
        `${(100 * putMBps / up.MBps).toFixed(0)}% of raw; ${(put.ms / 1000).toFixed(1)} s; ${
          (size / MB / (put.ms / 1000)).toFixed(2)
        } MB/s of file`,
      );
      const cap = put.stdout.trim();
      const get = await g.shoal("c0", ["client", "get", "--dir", c.dir, cap, `${g.root}/o2`], {
        timeoutMs: 1_800_000,
      });
      if (get.code !== 0) throw new Error(`immutable get failed: ${get.stderr}`);
      const getMBps = size / get.ms / 1000;
      row(
        `immutable get ${opts.mib} MiB: downlink MB/s`,
        `${getMBps.toFixed(2)} MB/s`,
        `${(100 * getMBps / down.MBps).toFixed(0)}% of raw; ${(get.ms / 1000).toFixed(1)} s`,
      );
      // Connections are reused, never re-handshaken per request: count them.
      const perServer = (await clientConns(g, sincePut)).map((x) => x.length);
      row(
        "connections per server during the put and the get (min-max)",
        `${Math.min(...perServer)}-${Math.max(...perServer)}`,
        "2 = one per command",
      );
      await Deno.remove(`${g.root}/o2`).catch(() => {});
      await Deno.remove(`${g.root}/o1`).catch(() => {});
    }
  } finally {
    await g.close();
  }
}

function options(args: string[]): { rtts: number[]; mib: number; mbit: number } {
  const { values } = parseArgs({
    args,
    strict: false,
    options: {
      rtt: { type: "string", default: "10,50,150" },
      mb: { type: "string", default: Deno.env.get("SHOAL_BENCH_LAB_MB") ?? "256" },
      mbit: { type: "string", default: "100" },
    },
  });
  return {
    rtts: String(values.rtt).split(",").map(Number),
    mib: Number(values.mb),
    mbit: Number(values.mbit),
  };
}

export const section: BenchSection = {
  name: "lab",
  title: "latency and bandwidth in the network lab (10 server hosts, 100 Mbit/s, 10/50/150 ms)",
  run: () => runLab(options(Deno.args)),
};

if (import.meta.main) await runLab(options(Deno.args));

/**
 * Bench section `discovery` (issue 5): joining a grid, refreshing it, and how
 * fast a removal reaches running clients, on real storage servers on loopback
 * (scripts/bench/harness.ts; several stores per process, share stores on
 * tmpfs because setup writes every GSA to every server: M^2 shares).
 *
 * Setup per grid size M (10, 50, 200), with the library directly (fast): each
 * server's GSA is written with its own fresh writecap, k = 1 with a share on
 * all M servers (what `shoal storage join` does); the GSD links all M GSAs and
 * is replicated on all M (what `operator create` + `add-announcement` build).
 * The introduction text lists all M storage URLs (as `get-introduction-text`
 * prints them) pointing at the stores' TLS ports; the GSAs announce the same
 * servers (same pins) at their byte-counting front ports, so a client's later
 * refreshes (which use the recorded, announced URLs) are counted to the byte.
 *
 * - join: a fresh client node (createClientNode + loadClientNode) refreshes
 *   once, as `shoal client servers --refresh` does: time, HTTP requests
 *   (counted by the servers, and by ClientPool.requests), requests to the
 *   first server. Target: 200 servers in < 2 s, <= 4 round trips to the first.
 * - unchanged refresh: requests and bytes on the wire (TLS included) per
 *   refresh, as the client does it (rotating servers), and on a kept-open
 *   connection. Target: <= 1 request and < 2 KB.
 * - before: join and refresh on 10 servers on the old Deno.serve stack (no TCP_NODELAY).
 * - convergence (issue #13): after a commission, one server's reaction and all M of them,
 *   a returning server given the same version, and every running client listing the newcomer.
 * - removal: 20 client nodes in this process (each its own GridNode and
 *   ClientPool) run the client daemon loop (runClient, refresh interval 1 s);
 *   the operator unlinks one server (republish to the other M - 1, as
 *   `remove-announcement` does); time until every client has logged the removal.
 *
 *   deno task bench discovery
 */
import {
  ClientPool,
  encodeAnnouncement,
  formatIntroductionText,
  gsdEntryName,
  gsdMeta,
} from "../../lib/discovery/mod.ts";
import {
  type DirEntry,
  Grid,
  mapLimit,
  mapUpdate,
  pushNewestVersion,
  ServerList,
  writeKeysFromSeed,
} from "../../lib/grid/mod.ts";
import {
  type Cap,
  formatCap,
  parseCap,
  randomBytes,
  readcapOf,
  writeEnabler,
  writeEnablerMaster,
} from "../../lib/crypto/mod.ts";
import {
  type ClientNode,
  createClientNode,
  loadClientNode,
  runClient,
} from "../../lib/roles/client/mod.ts";
import { VERSION } from "../../lib/version.ts";
import {
  type BenchServers,
  kb,
  line,
  machineLine,
  median,
  medP95,
  ms,
  printBaselines,
  rawBaselines,
  startServers,
} from "./harness.ts";
import type { BenchSection } from "./sections.ts";

/** Grid sizes; SHOAL_BENCH_DISCOVERY_SIZES="10,50" runs fewer. */
const SIZES = (Deno.env.get("SHOAL_BENCH_DISCOVERY_SIZES") ?? "10,50,200").split(",").map(Number);
const JOINS = 5;
const REFRESHES = 10;
/** Running clients in the removal and commission figures; SHOAL_BENCH_DISCOVERY_CLIENTS=5 fewer. */
const CLIENTS = Number(Deno.env.get("SHOAL_BENCH_DISCOVERY_CLIENTS") ?? 20);
/** SHOAL_BENCH_DISCOVERY_TIMELINE=1: print a per-second timeline of the removal figure. */
const TIMELINE = Deno.env.get("SHOAL_BENCH_DISCOVERY_TIMELINE") === "1";
/** Parts to run; SHOAL_BENCH_DISCOVERY_PARTS="removal" runs only that one (default all). */
const PARTS = new Set(
  (Deno.env.get("SHOAL_BENCH_DISCOVERY_PARTS") ?? "join,removal,convergence,before").split(","),
);
const REMOVAL_TIMEOUT_MS = 60_000;

interface BenchGrid {
  m: number;
  gsdWritecap: string;
  /** Each server's GSA writecap (what its announcer holds). */
  gsaWritecaps: string[];
  gsaReadcaps: string[];
  introText: string;
  /** A Grid over the M servers (direct URLs), as the operator uses it. */
  pool: ClientPool;
  grid: Grid;
  setupMs: number;
}

async function buildGrid(servers: BenchServers, m: number): Promise<BenchGrid> {
  const t0 = performance.now();
  const pool = new ClientPool({ timeoutMs: 60_000 });
  const grid = new Grid({
    servers: new ServerList(servers.parsed.slice(0, m).map((u) => pool.server(u))),
    leaseSecret: randomBytes(32),
    mutableEncoding: "everywhere",
  });
  const now = Math.floor(Date.now() / 1000);
  const gsaWritecaps: string[] = [];
  const gsaReadcaps = await mapLimit(Array.from({ length: m }, (_, i) => i), 8, async (i) => {
    const url = servers.countedParsed[i];
    const { writecap } = await grid.createMutableFile(
      encodeAnnouncement({
        nickname: `s${i}`,
        serverId: url.pin,
        software: `shoal/${VERSION}`,
        announced: now,
        storage: { type: "storage", storageUrls: [url] },
        otherServices: [],
      }),
      "everywhere",
    );
    gsaWritecaps[i] = writecap;
    return formatCap(await readcapOf(parseCap(writecap)));
  });
  const entries: DirEntry[] = gsaReadcaps.map((readcap, i) => ({
    name: gsdEntryName(`s${i}`),
    readcap,
    metadata: { ctime: now, mtime: now },
  }));
  const gsdWritecap = await grid.createDirectory(entries, "everywhere", { ...gsdMeta(now) });
  const gsdReadcap = await readcapOf(parseCap(gsdWritecap)) as Extract<Cap, { kind: "dir-read" }>;
  const introText = formatIntroductionText({ gsdReadcap, storageUrls: servers.parsed.slice(0, m) });
  return {
    m,
    gsdWritecap,
    gsaWritecaps,
    gsaReadcaps,
    introText,
    pool,
    grid,
    setupMs: performance.now() - t0,
  };
}

async function newClient(root: string, name: string, introText: string): Promise<ClientNode> {
  const dir = `${root}/${name}`;
  await createClientNode(dir, introText, { refreshInterval: 1, webPort: 0 });
  return await loadClientNode(dir);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * CPU seconds (user + system) used so far by this process and by its live child processes
 * (the server pools), from /proc (Linux; 0 elsewhere): beside wall time it shows whether a
 * figure waited on the machine's cores rather than on the code.
 */
function cpuSeconds(): { self: number; children: number } {
  const ticks = (pid: string) => {
    try {
      const f = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      return Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
    } catch {
      return 0;
    }
  };
  let children = 0;
  try {
    for (const t of Deno.readDirSync(`/proc/${Deno.pid}/task`)) {
      const kids = Deno.readTextFileSync(`/proc/${Deno.pid}/task/${t.name}/children`).trim();
      for (const k of kids ? kids.split(" ") : []) children += ticks(k);
    }
  } catch { /* not Linux */ }
  return { self: ticks(String(Deno.pid)) / 100, children: children / 100 };
}

/** "CPU 12.3 s (bench 8.1 s + servers 4.2 s) in 9.0 s wall on 2 cores": since `from`. */
function cpuNote(from: { cpu: ReturnType<typeof cpuSeconds>; t: number }): string {
  const now = cpuSeconds();
  const self = now.self - from.cpu.self;
  const kids = now.children - from.cpu.children;
  const wall = (performance.now() - from.t) / 1000;
  const cores = navigator.hardwareConcurrency;
  return `CPU ${(self + kids).toFixed(1)} s (clients ${self.toFixed(1)} s + servers ${
    kids.toFixed(1)
  } s) in ${wall.toFixed(1)} s wall on ${cores} cores (${
    Math.round((self + kids) / wall / cores * 100)
  }% busy)`;
}

function openFds(): number {
  let fds = 0;
  try {
    for (const _ of Deno.readDirSync(`/proc/${Deno.pid}/fd`)) fds++;
  } catch { /* not Linux */ }
  return fds;
}

/**
 * Wait until the running clients have started: each `client run` probes every recorded server
 * at start (a TLS connection each: 20 clients × M servers), so the figures wait until this
 * process's open descriptors stop changing for 1.5 s (at least `minMs`, at most 60 s). Returns how
 * long it took (ms), printed beside the figure: measured during the start-up storm, a client's
 * bound says more about the storm than about discovery.
 */
async function settled(minMs = 2500): Promise<number> {
  const t0 = performance.now();
  let last = openFds();
  let since = t0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const now = performance.now();
    const fds = openFds();
    if (fds !== last) {
      last = fds;
      since = now;
    }
    if ((now - t0 >= minMs && now - since >= 1500) || now - t0 >= 60_000) return now - t0;
  }
}

/**
 * Every second until stopped: this process's event-loop lag (how late a 100 ms timer fired,
 * worst in the second), CPU of this process and of the server pools, and open descriptors.
 */
function sampler(): { stop(): string[] } {
  // Each row is printed as it comes.
  const rows: string[] = [];
  let lagMax = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last - 100);
    last = now;
  }, 100);
  let prev = { cpu: cpuSeconds(), t: performance.now() };
  const t0 = prev.t;
  const sec = setInterval(() => {
    const cpu = cpuSeconds();
    const t = performance.now();
    const dt = (t - prev.t) / 1000;
    const fds = openFds();
    rows.push(
      `t=${((t - t0) / 1000).toFixed(0)}s lag ${lagMax.toFixed(0)} ms, clients ${
        Math.round((cpu.self - prev.cpu.self) / dt * 100)
      }% + servers ${Math.round((cpu.children - prev.cpu.children) / dt * 100)}% CPU, ${fds} fds`,
    );
    console.log(`    ${rows[rows.length - 1]}`); // as it comes: a cut-short run keeps it
    lagMax = 0;
    prev = { cpu, t };
  }, 1000);
  return {
    stop() {
      clearInterval(tick);
      clearInterval(sec);
      return rows;
    },
  };
}

/** The distinct reasons among failed-refresh log lines, most frequent first (at most 4). */
function failureReasons(lines: string[]): string {
  const counts = new Map<string, number>();
  for (const l of lines) {
    // Server ids and times differ between lines; the reason is what is left.
    const k = l.replace(/^refresh failed[^:]*: /, "").replace(/\b[a-z2-7]{8}\b/g, "ID")
      .replace(/\d+/g, "N").slice(0, 200);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, n]) => `${n}x ${k}`)
    .join(" | ");
}

async function joinAndRefresh(
  servers: BenchServers,
  g: BenchGrid,
  root: string,
  tag = "",
): Promise<void> {
  const times: number[] = [];
  const firstReqs: number[] = [];
  const totalReqs: number[] = [];
  const poolReqs: number[] = [];
  const clients: ClientNode[] = [];
  try {
    for (let j = 0; j < JOINS; j++) {
      const c = await newClient(root, `join${tag}-${g.m}-${j}`, g.introText);
      clients.push(c);
      await servers.reset();
      const t0 = performance.now();
      const r = await c.grid.refresh({ fanout: c.config.fanout });
      times.push(performance.now() - t0);
      if (r.state.servers.length !== g.m) {
        throw new Error(
          `join found ${r.state.servers.length} servers, expected ${g.m}: ${r.problems[0]}`,
        );
      }
      const st = await servers.stats();
      firstReqs.push(st[0].requests);
      totalReqs.push(sum(st.map((s) => s.requests)));
      poolReqs.push(c.grid.pool.requests);
    }
    const target = g.m === 200 ? `target < 2 s: ${median(times) < 2000 ? "met" : "MISSED"}` : "";
    line(`${g.m} servers: join (fresh client node, fanout 2)`, medP95(times), target);
    line(
      `${g.m} servers: HTTP requests to the first server`,
      `${Math.max(...firstReqs)}`,
      `target <= 4: ${
        Math.max(...firstReqs) <= 4 ? "met" : "MISSED"
      } (+ TCP and TLS 1.3 handshakes)`,
    );
    line(
      `${g.m} servers: HTTP requests in all (servers / ClientPool)`,
      `${Math.max(...totalReqs)} / ${Math.max(...poolReqs)}`,
    );

    // Unchanged refreshes, as the client does them (rotating the server asked): first visits
    // of each server in this process; the same servers again, as a long-running client comes
    // back to each after N polls (its idle connection closed meanwhile, the watch registered
    // on that server); and the same server over its kept-open connection.
    const c = clients[0];
    const blank = () => ({
      reqs: [] as number[],
      bytes: [] as number[],
      conns: [] as number[],
      t: [] as number[],
    });
    const rot = blank();
    const back = blank();
    const same = blank();
    for (let i = 0; i < 3 * REFRESHES; i++) {
      const phase = Math.floor(i / REFRESHES);
      if (phase === 1) {
        if (i === REFRESHES) {
          await c.grid.saveState({ ...c.grid.state, cursor: c.grid.state.cursor - REFRESHES });
        }
        c.grid.pool.closeIdle();
      }
      if (phase === 2 && i > 2 * REFRESHES) {
        // Ask the same server as last time, over its kept-open connection.
        await c.grid.saveState({ ...c.grid.state, cursor: c.grid.state.cursor - 1 });
      }
      const into = [rot, back, same][phase];
      await servers.reset();
      const before = c.grid.pool.requests;
      const t0 = performance.now();
      const r = await c.grid.refresh({ fanout: c.config.fanout });
      const dt = performance.now() - t0;
      if (r.full) {
        throw new Error(`an unchanged refresh did a full read (${r.problems.join("; ")})`);
      }
      const st = await servers.stats();
      if (phase === 2 && i === 2 * REFRESHES) continue; // the connection was opened by this one
      into.t.push(dt);
      into.reqs.push(c.grid.pool.requests - before);
      into.bytes.push(sum(st.map((s) => s.bytesIn + s.bytesOut)));
      into.conns.push(sum(st.map((s) => s.connections)));
    }
    const verdict = (reqs: number[], bytes: number[]) =>
      `aim <= 1 req, < 2 KB: ${
        Math.max(...reqs) <= 1 && Math.max(...bytes) < 2000 ? "met" : "MISSED"
      }`;
    for (
      const [what, m] of [
        ["rotating, first visit", rot],
        ["rotating, revisit", back],
      ] as const
    ) {
      line(
        `${g.m} servers: unchanged refresh, ${what}: requests`,
        `${Math.max(...m.reqs)}`,
        `${sum(m.conns)} new TLS connection(s) in ${m.reqs.length} refreshes; ${medP95(m.t)}`,
      );
      line(
        `${g.m} servers: unchanged refresh, ${what}: bytes on wire`,
        `${kb(median(m.bytes))}`,
        `(max ${kb(Math.max(...m.bytes))}) ${verdict(m.reqs, m.bytes)}; before ` +
          `(session 3): ${{ 10: "2.1 kB", 50: "2.7 kB", 200: "5.8 kB" }[g.m] ?? "-"} rotating`,
      );
    }
    line(
      `${g.m} servers: unchanged refresh, open connection: bytes`,
      `${kb(median(same.bytes))}`,
      `${Math.max(...same.reqs)} request(s); ${medP95(same.t)}; ${verdict(same.reqs, same.bytes)}`,
    );
  } finally {
    for (const c of clients) c.grid.close();
  }
}

async function removal(g: BenchGrid, root: string): Promise<void> {
  const clients: ClientNode[] = [];
  const ctrl = new AbortController();
  const runs: Promise<void>[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const c = await newClient(root, `run-${g.m}-${i}`, g.introText);
      await c.grid.refresh({ fanout: c.config.fanout });
      clients.push(c);
    }
    const victim = `s${g.m - 1}`;
    const seen: (number | null)[] = clients.map(() => null);
    const failures: string[] = [];
    const timeline = TIMELINE ? sampler() : null;
    const tStart = performance.now();
    for (const [i, c] of clients.entries()) {
      runs.push(runClient(c, ctrl.signal, (l) => {
        if (l.startsWith("removed:") && l !== `removed: ${victim}`) {
          // Only the victim leaves the GSD: anything else dropped is a bug (or a lost GSA).
          console.log(`    client ${i} removed more than ${victim}: ${l}`);
        }
        if (TIMELINE && /^(refresh failed|removed:)/.test(l)) {
          console.log(
            `    t=${((performance.now() - tStart) / 1000).toFixed(1)}s client ${i}: ${
              l.slice(0, 160)
            }`,
          );
        }
        if (l.startsWith("removed:") && seen[i] === null) seen[i] = performance.now();
        if (l.startsWith("refresh failed")) failures.push(l);
      }, { web: false }));
    }
    const startMs = await settled(); // all clients in their steady rhythm
    const others = new Grid({
      servers: new ServerList(
        g.grid.servers.all().filter((s) => s !== g.grid.servers.all()[g.m - 1]),
      ),
      leaseSecret: g.grid.leaseSecret,
      mutableEncoding: "everywhere",
    });
    const now = Math.floor(Date.now() / 1000);
    const cpu0 = { cpu: cpuSeconds(), t: performance.now() };
    const startFailures = failures.splice(0); // the clients' start, before the write
    const t0 = performance.now();
    await others.modifyDirectory(g.gsdWritecap, (entries) => ({
      entries: entries.filter((e) => e.name !== gsdEntryName(victim)),
      meta: { ...gsdMeta(now) },
    }), { encoding: "everywhere" });
    const t1 = performance.now();
    while (seen.some((s) => s === null) && performance.now() - t1 < REMOVAL_TIMEOUT_MS) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = seen.filter((s): s is number => s !== null).map((s) => s - t1);
    const all = after.length === CLIENTS;
    line(
      `${g.m} servers: removal, operator republish (${g.m - 1} servers)`,
      ms(t1 - t0),
    );
    line(
      `${g.m} servers: removal seen by all ${CLIENTS} clients (1 s refresh)`,
      all ? ms(Math.max(...after)) : `${after.length}/${CLIENTS} in ${REMOVAL_TIMEOUT_MS / 1000} s`,
      `after the republish; median client ${ms(median(after))}; clients' start settled in ` +
        `${(startMs / 1000).toFixed(1)} s` +
        (failures.length ? `; ${failures.length} failed refreshes` : ""),
    );
    line(`${g.m} servers: removal, machine while the clients caught up`, cpuNote(cpu0));
    if (timeline) {
      console.log(
        `    (clients started at t=0, republish at t=${((t0 - tStart) / 1000).toFixed(1)}s)`,
      );
      timeline.stop();
    }
    if (startFailures.length) {
      line(
        `${g.m} servers: removal, failed refreshes in the 2.5 s before the write`,
        `${startFailures.length}`,
        failureReasons(startFailures),
      );
    }
    if (failures.length) {
      line(`${g.m} servers: removal, why refreshes failed`, failureReasons(failures));
    }
  } finally {
    ctrl.abort();
    await Promise.all(runs);
    for (const c of clients) c.grid.close();
  }
}

/**
 * Convergence after a commission (issue #13): store M joins the grid of M. Its GSA is
 * written to all M + 1 servers (what `storage join` does), then the GSD linking it (what
 * `add-announcement` does). Then:
 *  - every server's reaction to the GSD write, as its announcer does it (check its GSA on
 *    all M + 1 servers, then a new version because the newcomer is beyond the version's
 *    share count; a server that merely lacked it would get the same version copied): timed
 *    one by one (what each server spends, in parallel on a real grid), and all M at once
 *    from this process (8 at a time: the same work on this machine's 2 cores);
 *  - a returning server (the newcomer, its shares of one GSA deleted as if it had been
 *    down): one announcer's copy of the existing version to it (pushNewestVersion);
 *  - every running client (20, 1 s interval, long polls) lists the newcomer.
 * Bound from docs/discovery.md §9: every server holds every GSA within wake (300 ms) + one
 * reaction after the GSD write.
 */
async function convergence(servers: BenchServers, g: BenchGrid, root: string): Promise<void> {
  const m = g.m;
  const clients: ClientNode[] = [];
  const ctrl = new AbortController();
  const runs: Promise<void>[] = [];
  const pool = new ClientPool({ timeoutMs: 60_000 });
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const c = await newClient(root, `conv-${m}-${i}`, g.introText);
      await c.grid.refresh({ fanout: c.config.fanout });
      clients.push(c);
    }
    const seen: (number | null)[] = clients.map(() => null);
    const failures: string[] = [];
    for (const [i, c] of clients.entries()) {
      runs.push(runClient(c, ctrl.signal, (l) => {
        if (l.startsWith("added:") && seen[i] === null) seen[i] = performance.now();
        if (l.startsWith("refresh failed")) failures.push(l);
      }, { web: false }));
    }
    const startMs = await settled();
    const all = new Grid({
      servers: new ServerList(servers.parsed.slice(0, m + 1).map((u) => pool.server(u))),
      leaseSecret: randomBytes(32),
      mutableEncoding: "everywhere",
    });
    const url = servers.countedParsed[m];
    const now = Math.floor(Date.now() / 1000);
    const { writecap } = await all.createMutableFile(
      encodeAnnouncement({
        nickname: `s${m}`,
        serverId: url.pin,
        software: `shoal/${VERSION}`,
        announced: now,
        storage: { type: "storage", storageUrls: [url] },
        otherServices: [],
      }),
      "everywhere",
    );
    const readcap = formatCap(await readcapOf(parseCap(writecap)));
    failures.splice(0);
    const cpu0 = { cpu: cpuSeconds(), t: performance.now() };
    const t0 = performance.now();
    await all.modifyDirectory(g.gsdWritecap, (entries) => ({
      entries: [...entries, {
        name: gsdEntryName(`s${m}`),
        readcap,
        metadata: { ctime: now, mtime: now },
      }],
      meta: { ...gsdMeta(now) },
    }), { encoding: "everywhere" });
    const gsdWritten = performance.now() - t0;
    const t1 = t0;
    while (seen.some((s) => s === null) && performance.now() - t0 < REMOVAL_TIMEOUT_MS) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const got = seen.filter((s): s is number => s !== null).map((s) => s - t1);
    line(
      `${m} servers: commission seen by all ${CLIENTS} clients (1 s refresh)`,
      got.length === CLIENTS
        ? ms(Math.max(...got))
        : `${got.length}/${CLIENTS} in ${REMOVAL_TIMEOUT_MS / 1000} s`,
      `after the GSD write; median client ${ms(median(got))}; bound: one interval after the ` +
        `servers holding the GSA are up; clients' start settled in ${
          (startMs / 1000).toFixed(1)
        } s` +
        (failures.length ? `; ${failures.length} failed refreshes` : ""),
    );
    line(`${m} servers: commission, machine while the clients caught up`, cpuNote(cpu0));
    if (failures.length) {
      line(`${m} servers: commission, why refreshes failed`, failureReasons(failures));
    }
    // The clients are idle again: time the servers' reactions without them competing.
    ctrl.abort();
    await Promise.all(runs);
    // Each server's reaction, one at a time, then all of them at once.
    const one: number[] = [];
    for (let i = 0; i < Math.min(5, m); i++) {
      const t = performance.now();
      await all.checkMutable(g.gsaWritecaps[i]);
      await all.modifyMutable(g.gsaWritecaps[i], (old) => old, { encoding: "everywhere" });
      one.push(performance.now() - t);
    }
    // Printed before the all-M figure, which at 200 servers is 40,000 share writes and may be
    // cut short (the session 3 table had no 200-server reaction for that reason).
    line(
      `${m} servers: commission, one server's reaction (check + publish)`,
      medP95(one),
      `bound: every server holds every GSA within 300 ms + this of the GSD write ` +
        `(${ms(300 + Math.max(...one))}); aim 2 s: ${
          300 + Math.max(...one) < 2000 ? "met" : "MISSED"
        }`,
    );
    const tAll = performance.now();
    await mapLimit(g.gsaWritecaps.slice(Math.min(5, m)), 8, async (w) => {
      await all.checkMutable(w);
      await all.modifyMutable(w, (old) => old, { encoding: "everywhere" });
    });
    const allMs = performance.now() - tAll + sum(one);
    const newcomer = new Grid({
      servers: new ServerList([pool.server(servers.parsed[m])]),
      leaseSecret: randomBytes(32),
    });
    let holdsAll = true;
    for (const rc of g.gsaReadcaps) {
      try {
        await newcomer.readMutable(rc);
      } catch {
        holdsAll = false;
      }
    }
    line(
      `${m} servers: commission, all ${m} reactions from one process`,
      ms(allMs),
      `newcomer holds every GSA: ${holdsAll ? "yes" : "NO"}; GSD write ${ms(gsdWritten)}`,
    );
    // A returning server: the same version copied, no new signature.
    const keys = await writeKeysFromSeed(
      (parseCap(g.gsaWritecaps[0]) as Extract<Cap, { kind: "mutable-write" }>).seed,
    );
    const before = (await all.checkMutable(g.gsaWritecaps[0])).newest!.seqnum;
    const target = all.servers.all()[m];
    const map = await mapUpdate({ servers: [target], leaseSecret: randomBytes(32) }, keys);
    await target.storage.readTestWrite(keys.storageIndex, {
      writeEnabler: writeEnabler(writeEnablerMaster(keys.writekey), target.serverId),
      leaseRenew: randomBytes(32),
      leaseCancel: randomBytes(32),
    }, {
      testWriteVectors: map.servers[0].shares.map((sh) => ({
        share: sh.shareNumber,
        test: [{ offset: 0, size: sh.checkstring.length, specimen: sh.checkstring }],
        write: [],
        newLength: 0,
      })),
      readVector: [],
    });
    const tp = performance.now();
    const push = await pushNewestVersion(
      { servers: all.servers.all(), leaseSecret: randomBytes(32) },
      keys,
      [target],
    );
    const pushMs = performance.now() - tp;
    const after = (await all.checkMutable(g.gsaWritecaps[0])).newest!.seqnum;
    line(
      `${m} servers: returning server, same version copied`,
      ms(pushMs),
      `placed ${push.placed.length}/1; version ${before} -> ${after} (${
        after === before ? "no new version" : "CLIMBED"
      })`,
    );
  } finally {
    ctrl.abort();
    await Promise.all(runs);
    for (const c of clients) c.grid.close();
    pool.close();
  }
}

async function run(): Promise<void> {
  console.log(`machine: ${machineLine()}`);
  printBaselines(await rawBaselines());
  // One more store than the largest grid: the newcomer of the convergence figures.
  const servers = await startServers(Math.max(...SIZES) + 1, { tmpfs: true });
  const root = await Deno.makeTempDir({ prefix: "shoal-bench-discovery-" });
  try {
    console.log(servers.describe());
    console.log(
      "(a grid of M uses the first M stores; introduction text -> TLS ports; GSAs -> byte-counting " +
        "fronts of the same stores)",
    );
    for (const m of SIZES) {
      const g = await buildGrid(servers, m);
      try {
        console.log(`grid of ${m}: setup (M GSAs + GSD, each on all M servers) ${ms(g.setupMs)}`);
        if (PARTS.has("join")) await joinAndRefresh(servers, g, root);
        if (PARTS.has("removal")) await removal(g, root);
        if (PARTS.has("convergence")) await convergence(servers, g, root);
      } finally {
        g.pool.close();
      }
    }
    // Before: the same 10-server grid on the old Deno.serve stack, which left TCP_NODELAY off.
    if (!PARTS.has("before")) return;
    const fixed = await startServers(10, { tmpfs: true, serve: "deno-serve" });
    try {
      console.log(`before (Deno.serve, no TCP_NODELAY), ${fixed.describe()}:`);
      const g = await buildGrid(fixed, 10);
      try {
        await joinAndRefresh(fixed, g, root, "-nodelay");
      } finally {
        g.pool.close();
      }
    } finally {
      await fixed.close();
    }
  } finally {
    await servers.close();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

export const section: BenchSection = {
  name: "discovery",
  title: "joining and refreshing a grid, and how fast a removal reaches clients (issue 5)",
  run,
};

if (import.meta.main) await run();

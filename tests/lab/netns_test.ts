/**
 * The lab's own machinery (scripts/lab/netns.ts, relay.ts): the relay's delay is per direction,
 * keeps order and carries many chunks in flight at once; partitions hold traffic and healing lets
 * it flow; refusing partitions close connections; teardown leaves no namespace behind, and a
 * crashed run's leftovers are removed. Two hosts and an echo server; needs root and `ip netns`.
 */
import { cleanupLeftovers, Lab, labUnavailable, PREFIX, run } from "../../scripts/lab/netns.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

const why = await labUnavailable();
if (why) console.error(`tests/lab: skipped: ${why}`);
const opts = { sanitizeOps: false, sanitizeResources: false, ignore: why !== null };

const ECHO = `
const l = Deno.listen({ hostname: "127.0.0.1", port: 9000 });
console.log("up");
for await (const c of l) {
  (async () => {
    const b = new Uint8Array(65536);
    let n;
    while ((n = await c.read(b)) !== null) {
      let o = 0;
      while (o < n) o += await c.write(b.subarray(o, n));
    }
    c.close();
  })().catch(() => {});
}`;

async function withEchoLab(delayMs: number, fn: (lab: Lab) => Promise<void>) {
  const lab = await Lab.create({ delayMs });
  try {
    await lab.addHost("a", "198.18.0.10");
    await lab.addHost("b", "198.18.0.11");
    const echo = lab.spawn("b", [Deno.execPath(), "eval", ECHO]);
    await echo.waitLine(/^up$/);
    await lab.startRelay("b", [[9000, "127.0.0.1:9000"]]);
    // The test process is in the root namespace and cannot reach 198.18/15 (nothing is routed
    // there): clients run in host a.
    await fn(lab);
  } finally {
    await lab.close();
  }
}

/** Run `code` (with `const c` connected to b's relay) in host a; returns its stdout lines. */
async function inA(lab: Lab, code: string): Promise<string[]> {
  const p = lab.spawn("a", [
    Deno.execPath(),
    "eval",
    `const c = await Deno.connect({ hostname: "198.18.0.11", port: 9000 });\n${code}`,
  ]);
  const s = await p.status;
  assert(s.code === 0, p.stderr());
  return p.lines;
}

Deno.test({
  name: "lab relay: round trip is twice the one-way delay; chunks do not queue behind each other",
  ...opts,
  async fn() {
    await withEchoLab(50, async (lab) => {
      const out = await inA(
        lab,
        `
        const one = new Uint8Array(1);
        const t0 = performance.now();
        await c.write(one); await c.read(one);
        console.log("rtt", performance.now() - t0);
        // 4 MiB in 64 KiB writes, echoed back: in order, and in about one round trip plus the
        // transfer, not one delay per chunk (64 chunks x 100 ms = 6.4 s).
        const total = 4 << 20;
        const data = new Uint8Array(total);
        for (let i = 0; i < total; i++) data[i] = (i * 7 + (i >> 16)) & 255;
        const t1 = performance.now();
        const writer = (async () => {
          for (let o = 0; o < total; o += 65536) {
            let w = 0;
            while (w < 65536) w += await c.write(data.subarray(o + w, o + 65536));
          }
        })();
        const got = new Uint8Array(total);
        let n = 0;
        while (n < total) {
          const r = await c.read(got.subarray(n));
          if (r === null) break;
          n += r;
        }
        await writer;
        let same = n === total;
        for (let i = 0; same && i < total; i++) same = got[i] === data[i];
        console.log("bulk", performance.now() - t1, same);
        c.close();`,
      );
      const rtt = Number(out.find((l) => l.startsWith("rtt"))!.split(" ")[1]);
      const [, ms, same] = out.find((l) => l.startsWith("bulk"))!.split(" ");
      assert(rtt >= 99 && rtt < 250, `round trip ${rtt} ms for 2 x 50 ms`);
      assertEquals(same, "true");
      assert(Number(ms) < 2500, `4 MiB echo took ${ms} ms: chunks serialized behind the delay`);
      const st = JSON.parse(
        await lab.host("b").relay!.ask(JSON.stringify({ stats: true }), "stats "),
      );
      assert(st.length >= 1 && st[0].up >= 4 << 20, JSON.stringify(st));
    });
  },
});

Deno.test({
  name: "lab relay: a partition holds traffic both ways, healing lets it flow; reject closes",
  ...opts,
  async fn() {
    await withEchoLab(5, async (lab) => {
      const p = lab.spawn("a", [
        Deno.execPath(),
        "eval",
        `
        const c = await Deno.connect({ hostname: "198.18.0.11", port: 9000 });
        const b = new Uint8Array(1);
        await c.write(b); await c.read(b); console.log("first");
        for await (const l of Deno.stdin.readable) {
          const t0 = performance.now();
          await c.write(b);
          const n = await c.read(b);
          console.log(n === null ? "closed" : "echo", performance.now() - t0);
        }`,
      ], { stdin: true });
      await p.waitLine(/^first$/);
      await lab.partition([["a"], ["b"]], "blackhole");
      await p.send("go");
      await new Promise((r) => setTimeout(r, 700));
      assert(!p.lines.some((l) => l.startsWith("echo")), "an echo crossed the partition");
      await lab.heal();
      const m = await p.waitLine(/^echo (\S+)/, 10_000);
      // Held until the heal (no echo before it, above); the child's clock starts when it reads
      // "go", which on a loaded machine is a little after the test sent it.
      assert(Number(m[1]) >= 400, `the held echo came after ${m[1]} ms`);
      await lab.partition([["a"], ["b"]], "reject");
      await p.send("go");
      await p.waitLine(/^closed|error/, 10_000).catch(() => {});
      await p.stop();
      assert(
        p.lines.some((l) => l.startsWith("closed")) || /reset|closed|Broken/i.test(p.stderr()),
        `a refusing partition did not close the connection: ${p.lines} ${p.stderr()}`,
      );
    });
  },
});

Deno.test({
  name: "lab teardown: close removes every namespace; a dead run's leftovers are removed",
  ...opts,
  async fn() {
    // A namespace as a crashed run (a pid that does not exist) would have left it.
    let dead = 4_000_000;
    while (await Deno.stat(`/proc/${dead}`).then(() => true, () => false)) dead++;
    const stale = `${PREFIX}${dead}-s0`;
    await run("ip", ["netns", "add", stale]);
    try {
      const lab = await Lab.create();
      const list1 = (await run("ip", ["netns", "list"])).stdout;
      assert(!list1.includes(stale), "the leftover namespace is still there");
      await lab.addHost("x", "198.18.0.20", { rateMbit: 10 });
      const tc = await run("ip", ["netns", "exec", lab.host("x").ns, "tc", "qdisc", "show"]);
      assert(tc.stdout.includes("tbf"), tc.stdout);
      await lab.close();
      await lab.close();
      const list2 = (await run("ip", ["netns", "list"])).stdout;
      assert(!list2.includes(`${PREFIX}${Deno.pid}-`), list2);
      const links = (await run("ip", ["link"])).stdout;
      assert(!links.includes("v-x"), links);
    } finally {
      await cleanupLeftovers();
    }
  },
});

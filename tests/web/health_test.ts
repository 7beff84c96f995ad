/**
 * Health at a glance (docs/web-api.md §5): /api/status's banner tells the
 * truth on a real grid (every server up, one down, all down), each server
 * shows its space and software from the version call, and every problem
 * comes with its fix. The expired-directory wording is checked on the pure
 * healthOf() with reports shaped as statusReport() builds them.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { healthOf, type StatusReport } from "../../lib/web/status.ts";
import { startGatewayGrid, waitFor } from "./web_helpers.ts";

Deno.test({
  name: "health banner on a real grid: all up, one down, all down (never 'fresh' alone)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const gg = await startGatewayGrid({ servers: 3, shares: { k: 2, n: 3, happy: 2 } });
    try {
      const status = async (): Promise<StatusReport> => {
        const r = await fetch(`${gg.base}/api/status`, {
          headers: { authorization: `Bearer ${gg.token}` },
        });
        assertEquals(r.status, 200);
        return await r.json();
      };
      let s = await status();
      await t.step("every server up: '3 of 3 servers reachable', space and software", async () => {
        await waitFor("3 of 3", async () => {
          s = await status();
          return s.health.banner === "3 of 3 servers reachable" &&
            s.servers.every((x) => x.availableSpace !== null && x.used !== null);
        }, 30_000);
        assertEquals(s.health.level, "ok");
        assertEquals(s.health.problems, []);
        for (const x of s.servers) {
          assert(x.availableSpace! > 0, "available space from the version call");
          // Every server holds the GSD and the GSAs: bytes of shares stored, never 0.
          assert(x.used! > 0, "space used from the version call");
          assert(x.software.startsWith("shoal"), `software version: ${x.software}`);
          assert(x.lastContact !== null);
        }
      });

      await t.step("one down: '2 of 3', a problem naming it with the fix", async () => {
        await gg.g.servers[1].proc!.stop();
        gg.g.servers[1].proc = null;
        await waitFor("2 of 3", async () => {
          s = await status();
          return s.health.banner === "2 of 3 servers reachable";
        }, 30_000);
        assertEquals(s.health.level, "warning");
        const p = s.health.problems.find((x) => x.text.startsWith("s1 is unreachable"));
        assert(p, JSON.stringify(s.health.problems));
        assert(p.fix.includes("shoal storage run"), p.fix);
        assertEquals(p.serverId, s.servers.find((x) => x.nickname === "s1")!.serverId);
      });

      await t.step("all down: 'no server reachable: start them or check the network'", async () => {
        for (const srv of gg.g.servers) {
          await srv.proc?.stop();
          srv.proc = null;
        }
        await waitFor("no server reachable", async () => {
          s = await status();
          return s.health.banner.startsWith("no server reachable");
        }, 30_000);
        assertEquals(s.health.banner, "no server reachable: start them or check the network");
        assertEquals(s.health.level, "error");
        assertEquals(s.health.reachable, 0);
        assertEquals(s.gsd!.freshness, "fresh", "the directory itself is still fresh");
        const down = s.health.problems.filter((x) =>
          x.serverId && x.text.includes(" is unreachable")
        );
        assertEquals(down.length, 3, JSON.stringify(s.health.problems));
      });
    } finally {
      await gg.close();
    }
  },
});

function report(over: Partial<Omit<StatusReport, "health">>): Omit<StatusReport, "health"> {
  const now = 1_800_000_000;
  const server = (i: number) => ({
    petname: `s${i}`,
    nickname: `s${i}`,
    serverId: `id${i}`.padEnd(52, "a"),
    locations: [`127.0.0.1:${7000 + i}`],
    software: "shoal/0.1.0",
    gsaSeqnum: 1,
    announced: now - 100,
    reachable: true,
    lastContact: now,
    gsdSeqnum: 5,
    hasNewestGsd: true,
    availableSpace: 10e9,
    used: 2e9,
    error: null,
  });
  return {
    role: "client",
    now,
    nickname: "c",
    refreshInterval: 60,
    refreshedAt: now,
    gsd: {
      seqnum: 5,
      issued: now - 40 * 86400,
      expires: now + 86400,
      freshness: "fresh",
      holders: [],
      lacking: [],
    },
    servers: [0, 1, 2, 3, 4].map(server),
    missing: [],
    history: [],
    ...over,
  };
}

Deno.test("healthOf: 5 of 5, an expired directory, a stale server, a full one", () => {
  const ok = healthOf(report({}));
  assertEquals([ok.level, ok.banner], ["ok", "5 of 5 servers reachable"]);

  const base = report({});
  const expired = healthOf({
    ...base,
    gsd: { ...base.gsd!, expires: base.now - 3 * 86400 - 10, freshness: "expired" },
  });
  assertEquals(expired.level, "warning");
  assertEquals(
    expired.banner,
    "5 of 5 servers reachable; the grid directory expired 3 days ago: ask the operator to run `shoal operator maintain`",
  );
  const past = healthOf({
    ...base,
    gsd: { ...base.gsd!, expires: base.now - 9 * 86400, freshness: "expired-past-grace" },
  });
  assertEquals(past.level, "error");
  assert(past.problems[0].text.includes("no longer trusted"));

  const servers = base.servers.map((s, i) =>
    i === 3
      ? { ...s, hasNewestGsd: false, gsdSeqnum: 4 }
      : i === 4
      ? { ...s, availableSpace: 0 }
      : s
  );
  const h = healthOf({ ...base, servers });
  assertEquals(h.level, "warning");
  assertEquals(h.problems.map((p) => [p.text, p.fix]), [
    [
      "s3 lacks the newest grid directory (holds version 4, newest is 5)",
      "ask the operator to run `shoal operator maintain --dir OP`",
    ],
    [
      "s4 is nearly full (0 bytes available)",
      "free disk space on its host or lower storage.reserved_space in its shoal.toml",
    ],
  ]);

  const checking = healthOf({
    ...base,
    servers: base.servers.map((s) => ({ ...s, reachable: null })),
  });
  assertEquals([checking.level, checking.banner], ["checking", "checking 5 servers…"]);
  const unread = healthOf({ ...base, gsd: null, servers: [] });
  assertEquals(unread.level, "error");
});

/** Pure parts of the gateway: Range parsing and the refresh history's bounds and collapsing. */
import { HttpError, parseRange, RefreshHistory } from "../../lib/web/mod.ts";
import { emptyState, type RefreshResult } from "../../lib/discovery/mod.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

Deno.test("parseRange: single ranges, suffixes, clamping; unsatisfiable is 416", () => {
  assertEquals(parseRange(null, 10), null);
  assertEquals(parseRange("bytes=0-0", 10), { start: 0, end: 0 });
  assertEquals(parseRange("bytes=2-", 10), { start: 2, end: 9 });
  assertEquals(parseRange("bytes=-3", 10), { start: 7, end: 9 });
  assertEquals(parseRange("bytes=-30", 10), { start: 0, end: 9 });
  assertEquals(parseRange("bytes=5-100", 10), { start: 5, end: 9 });
  // Ignored (whole body): multiple ranges, other units, malformed, end before start.
  for (const h of ["bytes=0-1,3-4", "items=0-1", "bytes=x-y", "bytes=-", "bytes=5-2"]) {
    assertEquals(parseRange(h, 10), null, h);
  }
  for (const [h, size] of [["bytes=10-", 10], ["bytes=0-", 0], ["bytes=-0", 10]] as const) {
    let err: unknown = null;
    try {
      parseRange(h, size);
    } catch (e) {
      err = e;
    }
    assert(err instanceof HttpError && err.status === 416, h);
    assertEquals((err as HttpError).headers["content-range"], `bytes */${size}`);
  }
});

function result(over: Partial<RefreshResult> = {}): RefreshResult {
  return {
    state: emptyState(),
    full: false,
    added: [],
    removed: [],
    updated: [],
    problems: [],
    freshness: "fresh",
    ...over,
  };
}

Deno.test("RefreshHistory: quiet refreshes collapse, changes and failures stand alone, bounded", async () => {
  const saved: string[] = [];
  const h = new RefreshHistory([], (e) => {
    saved.push(RefreshHistory.serialize(e));
    return Promise.resolve();
  });
  const st = emptyState();
  h.recordResult(result({ full: true, added: ["a"] }), st, 100);
  h.recordResult(result(), st, 101);
  h.recordResult(result(), st, 102);
  h.recordResult(result(), st, 103);
  h.recordFailure("no server answered", st, 104);
  h.recordFailure("no server answered", st, 105);
  h.recordResult(result({ full: true, removed: ["b"] }), st, 106);
  await h.flush();
  const e = h.entries();
  assertEquals(e.map((x) => [x.time, x.last, x.count, x.ok]), [
    [100, 100, 1, true],
    [101, 103, 3, true],
    [104, 105, 2, false],
    [106, 106, 1, true],
  ]);
  assertEquals(e[3].removed, ["b"]);
  // Persisted on every new entry (not on collapses), and parses back.
  assertEquals(saved.length, 4);
  assertEquals(RefreshHistory.parse(saved[3]).length, 4);
  assertEquals(RefreshHistory.parse("not json"), []);
  assertEquals(RefreshHistory.parse(null), []);

  const big = new RefreshHistory();
  for (let i = 0; i < 500; i++) big.recordResult(result({ full: true, added: [`s${i}`] }), st, i);
  assertEquals(big.entries().length, 200);
  assertEquals(big.entries()[199].added, ["s499"]);
  assertEquals(JSON.parse(RefreshHistory.serialize(big.entries())).entries.length, 50);
});

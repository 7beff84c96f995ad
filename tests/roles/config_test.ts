/** shoal.toml parsing: unknown and misplaced keys with their line, syntax errors with line:column. */
import { assert, assertEquals } from "../helpers/assert.ts";
import { parseClientConfig } from "../../lib/roles/client/node.ts";
import { parseOperatorConfig, renderOperatorConfig } from "../../lib/roles/operator/mod.ts";
import { parseConfig, renderConfig } from "../../lib/roles/storage/mod.ts";

function throws(f: () => unknown, part: string) {
  try {
    f();
  } catch (e) {
    assert((e as Error).message.includes(part), `'${part}' not in ${(e as Error).message}`);
    return;
  }
  throw new Error(`did not throw (${part})`);
}

Deno.test("client shoal.toml: every problem names file, line and key", () => {
  const ok = parseClientConfig(
    "[client]\nfanout = 3\n[shares]\nk = 1\nn = 2\nhappy = 2\n",
    "C.toml",
  );
  assertEquals([ok.fanout, ok.shares.k, ok.webPort], [3, 1, 3456]);
  throws(
    () => parseClientConfig("[client]\nfanuot = 3\n", "C.toml"),
    "C.toml:2: unknown key 'fanuot' in [client]",
  );
  throws(() => parseClientConfig("[client]\nfanout = = 3\n", "C.toml"), "C.toml:2:");
  throws(
    () => parseClientConfig("[clinet]\n", "C.toml"),
    "C.toml:1: unknown table or key 'clinet'",
  );
  // [web] and [shares] problems surface only when that section is used.
  const lazy = parseClientConfig("[web]\nk = 3\n[shares]\nk = 9\nn = 3\n", "C.toml");
  assertEquals(lazy.fanout, 2);
  throws(() => lazy.webPort, "C.toml:2: unknown key 'k' in [web] (it belongs in [shares])");
  throws(() => lazy.shares, "found k = 9, n = 3, happy = 7");
  throws(() => parseClientConfig("[client]\nfanout = 99\n", "C.toml"), "found 99");
});

Deno.test("operator shoal.toml: the rendered file parses; typos and bad values are named", () => {
  assertEquals(parseOperatorConfig(renderOperatorConfig(30), "OP.toml").validity, 30 * 86400);
  throws(
    () => parseOperatorConfig("[operator]\ngsd_validty_days = 3\n", "OP.toml"),
    "OP.toml:2: unknown key 'gsd_validty_days' in [operator]",
  );
  throws(() => parseOperatorConfig("[operator\n", "OP.toml"), "OP.toml:1:");
  throws(
    () => parseOperatorConfig("[operator]\ngsd_validity_days = -1\n", "OP.toml"),
    "found -1",
  );
});

Deno.test("storage shoal.toml: the rendered file has no unknown keys; typos are named", () => {
  const text = renderConfig({
    nickname: "s",
    listen: "127.0.0.1:7001",
    locations: ["127.0.0.1:7001"],
    reservedSpace: "1G",
  });
  parseConfig(text, "S.toml");
  const bad = text.replace('reserved_space = "1G"', 'reserved_spcae = "1G"');
  const line = bad.split("\n").findIndex((l) => l.startsWith("reserved_spcae")) + 1;
  throws(
    () => parseConfig(bad, "S.toml"),
    `S.toml:${line}: unknown key 'reserved_spcae' in [storage]`,
  );
  throws(
    () => parseConfig(text + "\n[web]\nport = 1\n", "S.toml"),
    "unknown table or key 'web'",
  );
});

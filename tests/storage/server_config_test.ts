/** The storage node's configuration: sizes, durations, host:port, and errors naming the key. */
import assert from "node:assert/strict";
import {
  ConfigError,
  parseConfig,
  parseDuration,
  parseHostPort,
  parseSize,
  renderConfig,
} from "../../lib/roles/storage/mod.ts";

Deno.test("sizes: decimal and binary units", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["500M", 500e6],
    ["10G", 10e9],
    ["1T", 1e12],
    ["1.5GB", 1.5e9],
    ["64MiB", 64 * 1024 ** 2],
    ["128gib", 128 * 1024 ** 3],
    ["2k", 2000],
    ["7", 7],
  ];
  for (const [t, n] of cases) assert.equal(parseSize(t), n, t);
  for (const t of ["", "lots", "-1G", "1X", "G", "1e9", "99999999999P"]) {
    assert.throws(() => parseSize(t), SyntaxError, t);
  }
});

Deno.test("durations and host:port", () => {
  assert.equal(parseDuration("31d"), 31 * 86400);
  assert.equal(parseDuration("1h"), 3600);
  assert.equal(parseDuration("2s"), 2);
  assert.equal(parseDuration(90), 90);
  for (const t of ["0s", "1w", "", "-5"]) assert.throws(() => parseDuration(t), SyntaxError, t);
  assert.deepEqual(parseHostPort("127.0.0.1:7001"), { host: "127.0.0.1", port: 7001 });
  assert.deepEqual(parseHostPort("[::1]:7001"), { host: "::1", port: 7001 });
  assert.deepEqual(parseHostPort("node.example.org:443"), { host: "node.example.org", port: 443 });
  for (
    const t of [
      "127.0.0.1",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "::1:7001",
      "a b:1",
      "1.2.3.999:1",
      "h:07",
    ]
  ) {
    assert.throws(() => parseHostPort(t), SyntaxError, t);
  }
});

Deno.test("the rendered config parses back with documented defaults", () => {
  const text = renderConfig({
    nickname: 'quote " and \\ back',
    listen: "127.0.0.1:7001",
    locations: ["127.0.0.1:7001", "[::1]:7002"],
    reservedSpace: "0",
  });
  const c = parseConfig(text);
  assert.equal(c.nickname, 'quote " and \\ back');
  assert.deepEqual(c.listen, { host: "127.0.0.1", port: 7001 });
  assert.deepEqual(c.locations, ["127.0.0.1:7001", "[::1]:7002"]);
  assert.equal(c.reservedSpace, 0);
  assert.equal(c.maxShareSize, 128 * 1024 ** 3);
  assert.equal(c.maxBodySize, 64 * 1024 ** 2);
  assert.equal(c.maxBatchSlots, 4096);
  assert.equal(c.leaseDuration, 31 * 86400);
  assert.equal(c.gcInterval, 3600);
  assert.equal(c.incomingTimeout, 300);
  assert.equal(c.maxUploads, 10_000);
  assert.equal(c.handshakeTimeout, 10);
  assert.equal(c.requestTimeout, 30);
  assert.equal(c.maxConnections, 10_000);
  assert.equal(c.maxConnectionsPerAddress, 100);
  // Minimal file: only listen; locations default to it.
  const m = parseConfig('[storage]\nlisten = "127.0.0.1:9"\n');
  assert.deepEqual(m.locations, ["127.0.0.1:9"]);
  assert.equal(m.reservedSpace, 1e9);
});

Deno.test("config errors name the file and key", () => {
  const base = '[storage]\nlisten = "127.0.0.1:9"\n';
  const cases: [string, RegExp][] = [
    ["[storage\n", /not valid TOML/],
    ['[node]\nrole = "client"\n' + base, /node\.role/],
    ["[storage]\n", /storage\.listen: missing/],
    ['[storage]\nlisten = "x"\n', /storage\.listen/],
    [base + "locations = []\n", /storage\.locations/],
    [base + 'locations = ["127.0.0.1:1", 5]\n', /storage\.locations/],
    [base + 'reserved_space = "lots"\n', /storage\.reserved_space/],
    [base + 'max_body_size = "1K"\n', /storage\.max_body_size/],
    [base + "max_batch_slots = 0\n", /storage\.max_batch_slots/],
    [base + 'lease_duration = "3x"\n', /storage\.lease_duration/],
    [base + "gc_interval = -1\n", /storage\.gc_interval/],
    [base + 'incoming_timeout = "soon"\n', /storage\.incoming_timeout/],
    [base + "max_uploads = 0\n", /storage\.max_uploads/],
    [base + 'handshake_timeout = "0s"\n', /storage\.handshake_timeout/],
    [base + "request_timeout = -5\n", /storage\.request_timeout/],
    [base + 'max_connections = "many"\n', /storage\.max_connections/],
    [
      base + "max_connections = 10\nmax_connections_per_address = 11\n",
      /storage\.max_connections_per_address/,
    ],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseConfig(text, "D/shoal.toml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      // A syntax error also names the line and column: "D/shoal.toml:1:9: not valid TOML".
      assert.match(e.message, /^D\/shoal\.toml(:\d+:\d+)?: /);
      assert.match(e.message, re);
      return true;
    });
  }
});

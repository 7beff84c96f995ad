/**
 * A bare TLS receiver for the `immutable` bench section (scripts/bench/immutable.ts): a node:tls
 * server on 127.0.0.1 with a throwaway certificate that reads every connection through the
 * storage server's read path (the shared read buffer once its check has passed, tls_reads.ts) and
 * discards the bytes. Prints `listening PORT` first, then, for each connection that ends,
 * `received BYTES CPU_SECONDS` (this process's CPU, every thread, since that connection began).
 * Runs until it is signalled (the bench's spawnUntil stop()).
 */
import tls from "node:tls";
import { generateTlsIdentity } from "../../lib/storage/tls.ts";
import { readIntoShared, sharedReadsReady } from "../../lib/storage/tls_reads.ts";
import { cpuSeconds } from "./harness.ts";

const id = await generateTlsIdentity(["127.0.0.1"]);
const shared = await sharedReadsReady();
const server = tls.createServer({ cert: id.certPem, key: id.keyPem }, (socket) => {
  socket.setNoDelay(true);
  const c0 = cpuSeconds();
  let bytes = 0;
  if (!(shared && readIntoShared(socket, (view) => (bytes += view.length, true)))) {
    socket.on("data", (d: Uint8Array) => (bytes += d.length));
  }
  socket.on("end", () => {
    console.log(`received ${bytes} ${cpuSeconds() - c0}`);
    socket.end();
  });
  socket.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  console.log(`listening ${typeof a === "object" && a ? a.port : 0}`);
});

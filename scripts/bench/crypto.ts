/**
 * Bench section `crypto`: our wrappers beside the raw primitives they use,
 * measured in the same run (best of 3 for throughput figures).
 *
 *   deno task bench crypto
 */
import { createHash } from "node:crypto";
import { u64be } from "../../lib/codec/mod.ts";
import {
  aesCtr,
  HashTree,
  publicKeyFromSeed,
  randomBytes,
  sha256,
  sign,
  taggedHash,
  TaggedHasher,
  TAGS,
  verify,
} from "../../lib/crypto/mod.ts";
import type { BenchSection } from "./sections.ts";

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

async function best(fn: () => unknown | Promise<unknown>, runs = 3): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min / 1000;
}

function mbps(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / seconds).toFixed(0).padStart(6)} MB/s`;
}

function row(label: string, value: string, baseline?: number, ours?: number): void {
  const ratio = baseline && ours ? `  (${(ours / baseline * 100).toFixed(0)}% of raw)` : "";
  console.log(`  ${label.padEnd(44)} ${value}${ratio}`);
}

async function opsPerSecond(fn: () => Promise<unknown>, seconds = 1): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 100; i++) await fn();
    n += 100;
  }
  return n / ((performance.now() - t0) / 1000);
}

export const section: BenchSection = {
  name: "crypto",
  title: "AES-256-CTR, SHA-256, tagged hash, Ed25519, hash trees (64 MiB inputs)",
  async run() {
    const data = randomBytes(SIZE);
    const key = randomBytes(32);
    const iv = randomBytes(16);

    console.log("AES-256-CTR, 64 MiB in one call:");
    const ck = await crypto.subtle.importKey("raw", key, "AES-CTR", false, ["encrypt"]);
    const rawAes = await best(() =>
      crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 128 }, ck, data)
    );
    row("raw Web Crypto subtle.encrypt", mbps(SIZE, rawAes));
    const ours = await best(() => aesCtr(key, iv, data));
    row("aesCtr (offset 0)", mbps(SIZE, ours), SIZE / rawAes, SIZE / ours);
    const oursOff = await best(() => aesCtr(key, iv, data, 7));
    row("aesCtr (unaligned offset 7)", mbps(SIZE, oursOff), SIZE / rawAes, SIZE / oursOff);
    const pieces = await best(async () => {
      for (let off = 0; off < SIZE; off += MiB) {
        await aesCtr(key, iv, data.subarray(off, off + MiB), off);
      }
    });
    row("aesCtr in 1 MiB pieces", mbps(SIZE, pieces), SIZE / rawAes, SIZE / pieces);

    console.log("SHA-256 over 64 MiB:");
    const rawDigest = await best(() => crypto.subtle.digest("SHA-256", data));
    row("raw Web Crypto subtle.digest", mbps(SIZE, rawDigest));
    const nodeSha = await best(() => createHash("sha256").update(data).digest());
    row("raw node:crypto createHash", mbps(SIZE, nodeSha));
    const ourSha = await best(() => sha256(data));
    row("sha256 (node:crypto)", mbps(SIZE, ourSha), SIZE / nodeSha, SIZE / ourSha);
    const tagged = await best(() => taggedHash(TAGS.segmentHash, data));
    row("taggedHash", mbps(SIZE, tagged), SIZE / nodeSha, SIZE / tagged);
    const hasher = await best(() => {
      const h = new TaggedHasher(TAGS.segmentHash, SIZE);
      for (let off = 0; off < SIZE; off += MiB) h.update(data.subarray(off, off + MiB));
      return h.digest();
    });
    row("TaggedHasher, 1 MiB updates", mbps(SIZE, hasher), SIZE / nodeSha, SIZE / hasher);

    console.log("Ed25519 (1 s each):");
    const seed = randomBytes(32);
    const msg = randomBytes(64);
    const pkcs8 = new Uint8Array([
      ...[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22],
      ...[0x04, 0x20],
      ...seed,
    ]);
    const sk = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", false, ["sign"]);
    const pub = await publicKeyFromSeed(seed);
    const pk = await crypto.subtle.importKey(
      "raw",
      pub as Uint8Array<ArrayBuffer>,
      "Ed25519",
      false,
      [
        "verify",
      ],
    );
    const sig = await sign(seed, msg);
    const rawSign = await opsPerSecond(() => crypto.subtle.sign("Ed25519", sk, msg));
    row("raw subtle.sign", `${rawSign.toFixed(0).padStart(6)} /s`);
    const ourSign = await opsPerSecond(() => sign(seed, msg));
    row("sign (cached key)", `${ourSign.toFixed(0).padStart(6)} /s`, rawSign, ourSign);
    const rawVerify = await opsPerSecond(() => crypto.subtle.verify("Ed25519", pk, sig, msg));
    row("raw subtle.verify", `${rawVerify.toFixed(0).padStart(6)} /s`);
    const ourVerify = await opsPerSecond(() => verify(pub, msg, sig));
    row("verify (cached key)", `${ourVerify.toFixed(0).padStart(6)} /s`, rawVerify, ourVerify);
    const fresh = await opsPerSecond(() => publicKeyFromSeed(randomBytes(32)), 0.5);
    row("publicKeyFromSeed, fresh seed (import+export)", `${fresh.toFixed(0).padStart(6)} /s`);

    console.log("Hash tree over 64 MiB of 128 KiB blocks (512 leaves):");
    const block = 128 * 1024;
    const rawLeaves = await best(() => {
      for (let off = 0; off < SIZE; off += block) {
        createHash("sha256").update(data.subarray(off, off + block)).digest();
      }
    });
    row("raw node:crypto SHA-256 per block", mbps(SIZE, rawLeaves));
    const tree = await best(() => {
      const leaves: Uint8Array[] = [];
      for (let off = 0; off < SIZE; off += block) {
        leaves.push(taggedHash(TAGS.blockHash, data.subarray(off, off + block)));
      }
      return new HashTree(leaves).root;
    });
    row("blockHash leaves + HashTree", mbps(SIZE, tree), SIZE / rawLeaves, SIZE / tree);
    const many = Array.from({ length: 100_000 }, (_, i) => sha256(u64be(i)));
    const t100k = await best(() => new HashTree(many));
    row("HashTree of 10^5 leaves (131072 padded)", `${(t100k * 1000).toFixed(0).padStart(6)} ms`);
  },
};

/**
 * AES-256-CTR through Web Crypto, seekable to any byte offset.
 *
 * The keystream for byte `p` of a stream is byte `p mod 16` of
 * AES(key, counterBlock(floor(p / 16))) where counterBlock(b) is the 16-byte
 * IV read as a 128-bit big-endian integer plus b, modulo 2^128. Encrypting a
 * piece that starts at `byteOffset` therefore gives exactly the bytes the same
 * positions get when the whole stream is encrypted in one call. See
 * docs/crypto.md §6 for why CTR (not an AEAD) is the right mode here.
 */

import { createCipheriv } from "node:crypto";

/** `iv` (16 bytes, big-endian) plus `blocks`, modulo 2^128. */
function addCounter(iv: Uint8Array, blocks: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16);
  out.set(iv);
  let carry = blocks; // safe integer: at most 2^53 / 16
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const sum = out[i] + (carry % 256);
    out[i] = sum & 0xff;
    carry = Math.floor(carry / 256) + (sum >> 8);
  }
  return out;
}

/**
 * AES-256-CTR en/decryption (the same operation) of `data` as the piece of a
 * stream starting at `byteOffset`. `key` is 32 bytes, `iv` 16 bytes. A piece
 * that starts inside a counter block is encrypted from that block's start:
 * with `byteOffset % 16` bytes of its buffer before `data` (headroom, left
 * unchanged) it is encrypted where it is, else it is first copied into an
 * aligned frame (a fresh buffer the size of `data`).
 */
export async function aesCtr(
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
  byteOffset = 0,
): Promise<Uint8Array> {
  if (key.length !== 32) throw new RangeError(`aesCtr: key must be 32 bytes, got ${key.length}`);
  if (iv.length !== 16) throw new RangeError(`aesCtr: iv must be 16 bytes, got ${iv.length}`);
  if (!Number.isSafeInteger(byteOffset) || byteOffset < 0) {
    throw new RangeError(
      `aesCtr: byteOffset must be a non-negative safe integer, got ${byteOffset}`,
    );
  }
  if (!Number.isSafeInteger(byteOffset + data.length)) {
    throw new RangeError("aesCtr: stream position exceeds 2^53-1");
  }
  if (data.length === 0) return new Uint8Array(0);
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(key),
    "AES-CTR",
    false,
    ["encrypt"],
  );
  const counter = addCounter(iv, Math.floor(byteOffset / 16));
  const skip = byteOffset % 16;
  let input: Uint8Array<ArrayBuffer>;
  if (skip === 0) {
    input = data as Uint8Array<ArrayBuffer>;
  } else if (data.byteOffset >= skip) {
    // The bytes before `data` in its buffer fill the first counter block (read, never
    // changed; their output is dropped): no aligned copy of the input.
    input = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset - skip, skip + data.length);
  } else {
    input = new Uint8Array(skip + data.length);
    input.set(data, skip);
  }
  const out = await crypto.subtle.encrypt(
    { name: "AES-CTR", counter, length: 128 },
    cryptoKey,
    input,
  );
  return new Uint8Array(out, skip);
}

/**
 * Synchronous AES-256-CTR from offset 0 (node:crypto; pure computation). For
 * many small pieces — a directory's child writecaps — where an awaited Web
 * Crypto call per piece costs more than the cipher. Same keystream as aesCtr.
 */
export function aesCtrSync(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  if (key.length !== 32) {
    throw new RangeError(`aesCtrSync: key must be 32 bytes, got ${key.length}`);
  }
  if (iv.length !== 16) throw new RangeError(`aesCtrSync: iv must be 16 bytes, got ${iv.length}`);
  const c = createCipheriv("aes-256-ctr", key, iv);
  const out = new Uint8Array(data.length);
  out.set(c.update(data), 0);
  c.final();
  return out;
}

/** Secure random bytes from the platform CSPRNG (Web Crypto). Pure: no I/O. */

const MAX_CHUNK = 65536; // crypto.getRandomValues refuses more per call

/** `n` bytes from crypto.getRandomValues, filled in chunks of at most 65536. */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`randomBytes: length must be a non-negative integer, got ${n}`);
  }
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += MAX_CHUNK) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + MAX_CHUNK)));
  }
  return out;
}

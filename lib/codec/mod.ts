/** Pure codecs: bytes helpers, base32, CBOR, erasure coding. No I/O. */
export * from "./bytes.ts";
export * from "./base32.ts";
export * from "./cbor.ts";
export * from "./erasure.ts";

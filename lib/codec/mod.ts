/** Pure codecs: bytes helpers, base32, CBOR. No I/O. */
export * from "./bytes.ts";
export * from "./base32.ts";
export * from "./cbor.ts";

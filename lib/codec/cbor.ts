/**
 * CBOR (RFC 8949) through the `cborg` library, in a strict profile: definite
 * lengths, no `undefined`, no duplicate map keys, no tags, and a size limit on
 * input. Byte strings come back as `Uint8Array`; maps with string keys come
 * back as plain objects.
 */
import { decode, encode } from "cborg";

/** Raised for input that is not well-formed CBOR in Shoal's profile. */
export class CborError extends SyntaxError {
  override name = "CborError";
}

export function encodeCbor(value: unknown): Uint8Array {
  return encode(value);
}

const DECODE_OPTIONS = {
  strict: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowNaN: false,
  allowInfinity: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
};

/** Decode exactly one CBOR item filling `bytes` entirely. */
export function decodeCbor(bytes: Uint8Array, maxBytes = 64 * 1024 * 1024): unknown {
  if (bytes.length > maxBytes) {
    throw new CborError(`CBOR input of ${bytes.length} bytes exceeds ${maxBytes}`);
  }
  if (bytes.length === 0) throw new CborError("empty CBOR input");
  let value: unknown;
  try {
    value = decode(bytes, DECODE_OPTIONS);
  } catch (e) {
    throw new CborError(`malformed CBOR: ${(e as Error).message}`);
  }
  // cborg decodes text leniently (invalid UTF-8 becomes U+FFFD). When a
  // replacement character appears, require that re-encoding gives the input
  // back: a genuine U+FFFD survives, invalid UTF-8 does not.
  if (hasReplacementChar(value, 0)) {
    const again = encode(value);
    if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
      throw new CborError(
        "malformed CBOR: text string is not valid UTF-8 (or the encoding is not canonical)",
      );
    }
  }
  return value;
}

function hasReplacementChar(v: unknown, depth: number): boolean {
  if (depth > 256) return false;
  if (typeof v === "string") return v.includes("\uFFFD");
  if (Array.isArray(v)) return v.some((x) => hasReplacementChar(x, depth + 1));
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.entries(v).some(([k, x]) =>
      k.includes("\uFFFD") || hasReplacementChar(x, depth + 1)
    );
  }
  return false;
}

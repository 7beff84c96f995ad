/**
 * Lowercase, unpadded RFC 4648 base32 (alphabet `a-z2-7`), the form
 * Tahoe-LAFS users know from caps. Decoding is strict: it refuses characters
 * outside the alphabet, uppercase, padding, impossible lengths and non-zero
 * trailing bits, so every byte string has exactly one encoding.
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
const LOOKUP = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Raised for any string that is not canonical lowercase unpadded base32. */
export class Base32Error extends SyntaxError {
  override name = "Base32Error";
}

export function base32Encode(data: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** Length in characters of the encoding of `n` bytes. */
export function base32Length(n: number): number {
  return Math.ceil((n * 8) / 5);
}

export function base32Decode(text: string): Uint8Array {
  const rem = text.length % 8;
  if (rem === 1 || rem === 3 || rem === 6) {
    throw new Base32Error(`base32 text of length ${text.length} cannot encode whole bytes`);
  }
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c] : -1;
    if (v < 0) {
      throw new Base32Error(`invalid base32 character at position ${i} (expected a-z or 2-7)`);
    }
    buffer = ((buffer << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >>> bits) & 0xff;
    }
  }
  if ((buffer & ((1 << bits) - 1)) !== 0) {
    throw new Base32Error("base32 text has non-zero trailing bits (not canonical)");
  }
  return out;
}

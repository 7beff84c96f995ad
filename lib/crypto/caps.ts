/**
 * Capabilities and their one-line string forms (docs/caps.md).
 *
 *   shoal:MUT-W1:<base32 seed>                        32 bytes
 *   shoal:MUT-R1:<base32 readkey || fingerprint>       64 bytes
 *   shoal:MUT-V1:<base32 storageIndex || fingerprint>  48 bytes
 *   shoal:DIR-W1 / DIR-R1 / DIR-V1                     as MUT-*
 *   shoal:CHK-R1:<base32 key || uebHash>:<k>:<n>:<size>            64 bytes
 *   shoal:CHK-V1:<base32 storageIndex || uebHash>:<k>:<n>:<size>   48 bytes
 *
 * Parsing is strict and canonical (format(parse(s)) === s). A CapError names
 * exactly what is wrong and where, and never contains the cap text or any of
 * its secret bytes.
 */
import { base32Decode, base32Encode, base32Length } from "../codec/base32.ts";
import { concatBytes } from "../codec/bytes.ts";
import { publicKeyFromSeed } from "./ed25519.ts";
import { publicKeyFromSeedSync } from "./ed25519_sync.ts";
import {
  fingerprintFromPublicKey,
  immutableStorageIndex,
  readkeyFromWritekey,
  storageIndexFromFingerprint,
  storageIndexFromPublicKey,
  writekeyFromSeed,
} from "./keys.ts";

export type Cap =
  | { kind: "mutable-write"; seed: Uint8Array }
  | { kind: "mutable-read"; readkey: Uint8Array; fingerprint: Uint8Array }
  | { kind: "mutable-verify"; storageIndex: Uint8Array; fingerprint: Uint8Array }
  | { kind: "dir-write"; seed: Uint8Array }
  | { kind: "dir-read"; readkey: Uint8Array; fingerprint: Uint8Array }
  | { kind: "dir-verify"; storageIndex: Uint8Array; fingerprint: Uint8Array }
  | {
    kind: "immutable-read";
    key: Uint8Array;
    uebHash: Uint8Array;
    k: number;
    n: number;
    size: number;
  }
  | {
    kind: "immutable-verify";
    storageIndex: Uint8Array;
    uebHash: Uint8Array;
    k: number;
    n: number;
    size: number;
  };

export type CapKind = Cap["kind"];

/** Why a cap was refused; `message` says what is wrong and what to do. */
export type CapErrorCode =
  | "type" // not a string
  | "too-long"
  | "whitespace"
  | "character" // non-ASCII or control character
  | "prefix" // does not start with "shoal:"
  | "unknown-kind"
  | "unsupported-version"
  | "truncated" // missing fields
  | "extra-fields"
  | "base32"
  | "length" // payload of the wrong length
  | "number" // bad k, n or size
  | "invalid-cap" // a Cap object that cannot be formatted
  | "cannot-diminish";

/** Raised for a malformed cap. Never carries the cap text or its secrets. */
export class CapError extends Error {
  override name = "CapError";
  readonly code: CapErrorCode;
  constructor(code: CapErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export const CAP_PREFIX = "shoal:";
/** Longest cap string accepted (the longest valid one has 141 characters). */
export const MAX_CAP_LENGTH = 512;

interface KindInfo {
  kind: CapKind;
  family: string; // e.g. "MUT-W"
  /** field lengths in bytes, concatenated in the payload */
  fields: [string, number][];
  chk: boolean;
}

const KINDS: KindInfo[] = [
  { kind: "mutable-write", family: "MUT-W", fields: [["seed", 32]], chk: false },
  {
    kind: "mutable-read",
    family: "MUT-R",
    fields: [["readkey", 32], ["fingerprint", 32]],
    chk: false,
  },
  {
    kind: "mutable-verify",
    family: "MUT-V",
    fields: [["storageIndex", 16], ["fingerprint", 32]],
    chk: false,
  },
  { kind: "dir-write", family: "DIR-W", fields: [["seed", 32]], chk: false },
  { kind: "dir-read", family: "DIR-R", fields: [["readkey", 32], ["fingerprint", 32]], chk: false },
  {
    kind: "dir-verify",
    family: "DIR-V",
    fields: [["storageIndex", 16], ["fingerprint", 32]],
    chk: false,
  },
  { kind: "immutable-read", family: "CHK-R", fields: [["key", 32], ["uebHash", 32]], chk: true },
  {
    kind: "immutable-verify",
    family: "CHK-V",
    fields: [["storageIndex", 16], ["uebHash", 32]],
    chk: true,
  },
];
const VERSION = 1;
const BY_FAMILY = new Map(KINDS.map((i) => [i.family, i]));
const BY_KIND = new Map(KINDS.map((i) => [i.kind, i]));
const KIND_LIST = KINDS.map((i) => `${i.family}${VERSION}`).join(", ");

function payloadBytes(info: KindInfo): number {
  return info.fields.reduce((a, [, l]) => a + l, 0);
}

/** The string name of a cap's kind, e.g. "MUT-W1". */
export function capKindName(cap: Cap): string {
  const info = BY_KIND.get(cap?.kind);
  if (!info) throw new CapError("invalid-cap", "not a cap: unknown kind");
  return `${info.family}${VERSION}`;
}

const NUMBER_RE = /^(0|[1-9][0-9]{0,15})$/;

function parseNumber(text: string, what: string, kindName: string): number {
  if (!NUMBER_RE.test(text)) {
    throw new CapError(
      "number",
      `bad ${what} in ${kindName} cap: expected a decimal integer without leading zeros`,
    );
  }
  return Number(text);
}

function checkParams(k: number, n: number, size: number, kindName: string): void {
  if (!Number.isInteger(k) || k < 1 || k > 256) {
    throw new CapError("number", `bad k in ${kindName} cap: must be in 1..256`);
  }
  if (!Number.isInteger(n) || n < k || n > 256) {
    throw new CapError("number", `bad n in ${kindName} cap: must be in k..256`);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new CapError("number", `bad size in ${kindName} cap: must be in 0..2^53-1`);
  }
}

/** Parse a cap string; CapError (with a precise reason) for anything else. */
export function parseCap(text: string): Cap {
  if (typeof text !== "string") throw new CapError("type", "a cap must be a string");
  if (text.length > MAX_CAP_LENGTH) {
    throw new CapError(
      "too-long",
      `cap is ${text.length} characters long; no valid cap exceeds ${MAX_CAP_LENGTH}`,
    );
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c) {
      throw new CapError(
        "whitespace",
        `cap contains whitespace at position ${i}; remove spaces and line breaks`,
      );
    }
    if (c < 0x21 || c > 0x7e) {
      throw new CapError(
        "character",
        `cap contains a non-ASCII or control character at position ${i}`,
      );
    }
  }
  if (!text.startsWith(CAP_PREFIX)) {
    const hint = text.startsWith("URI:") ? " (this looks like a Tahoe-LAFS cap)" : "";
    throw new CapError("prefix", `not a Shoal cap: it must start with "${CAP_PREFIX}"${hint}`);
  }
  const parts = text.slice(CAP_PREFIX.length).split(":");
  const kindText = parts[0];
  const m = /^([A-Z]{3}-[A-Z])([0-9]+)$/.exec(kindText);
  const info = m ? BY_FAMILY.get(m[1]) : undefined;
  if (!m || !info) {
    // Echo the kind only when it has the shape of one (three letters, "-", a
    // letter, digits): a base32 payload, even uppercased, never contains "-".
    const shown = /^[A-Z]{3}-[A-Z][0-9]{0,3}$/.test(kindText) ? ` "${kindText}"` : "";
    throw new CapError(
      "unknown-kind",
      `unknown cap kind${shown}: expected one of ${KIND_LIST} after "${CAP_PREFIX}"`,
    );
  }
  if (m[2] !== String(VERSION)) {
    const v = m[2].length <= 6 ? ` ${m[2]}` : "";
    throw new CapError(
      "unsupported-version",
      `unsupported version${v} of cap kind ${m[1]}: this program reads version ${VERSION}` +
        ` (a newer Shoal may read it)`,
    );
  }
  const kindName = kindText;
  const wantFields = info.chk ? 4 : 1;
  const got = parts.length - 1;
  const fieldNames = info.chk ? "payload:k:n:size" : "payload";
  if (got < wantFields || parts[1] === "") {
    throw new CapError(
      "truncated",
      `truncated ${kindName} cap: expected ${wantFields} field(s) after the kind (${fieldNames}),` +
        ` got ${parts[1] === "" && got >= 1 ? "an empty payload" : got}`,
    );
  }
  if (got > wantFields) {
    throw new CapError(
      "extra-fields",
      `${kindName} cap has ${got} fields after the kind; expected ${wantFields} (${fieldNames})`,
    );
  }
  const payloadText = parts[1];
  const payloadStart = CAP_PREFIX.length + kindText.length + 1;
  const want = payloadBytes(info);
  const wantChars = base32Length(want);
  for (let i = 0; i < payloadText.length; i++) {
    const c = payloadText[i];
    if (!((c >= "a" && c <= "z") || (c >= "2" && c <= "7"))) {
      const upper = c >= "A" && c <= "Z" ? " (caps use lowercase base32)" : "";
      throw new CapError(
        "base32",
        `bad base32 in ${kindName} cap at position ${payloadStart + i}: ` +
          `only a-z and 2-7 are allowed${upper}`,
      );
    }
  }
  if (payloadText.length !== wantChars) {
    const gotBytes = Math.floor((payloadText.length * 5) / 8);
    throw new CapError(
      "length",
      `wrong payload length in ${kindName} cap: expected ${wantChars} base32 characters` +
        ` (${want} bytes), got ${payloadText.length} characters (~${gotBytes} bytes)` +
        (payloadText.length < wantChars ? "; the cap looks truncated" : ""),
    );
  }
  let payload: Uint8Array;
  try {
    payload = base32Decode(payloadText);
  } catch {
    throw new CapError(
      "base32",
      `bad base32 in ${kindName} cap at position ${payloadStart + payloadText.length - 1}:` +
        ` the last character has non-zero unused bits (not canonical)`,
    );
  }
  const values: Record<string, Uint8Array> = {};
  let off = 0;
  for (const [name, len] of info.fields) {
    values[name] = payload.slice(off, off + len);
    off += len;
  }
  if (!info.chk) return { kind: info.kind, ...values } as Cap;
  const k = parseNumber(parts[2], "k", kindName);
  const n = parseNumber(parts[3], "n", kindName);
  const size = parseNumber(parts[4], "size", kindName);
  checkParams(k, n, size, kindName);
  return { kind: info.kind, ...values, k, n, size } as Cap;
}

/** The canonical string form of a cap. */
export function formatCap(cap: Cap): string {
  const info = BY_KIND.get(cap?.kind);
  if (!info) throw new CapError("invalid-cap", "cannot format: not a cap (unknown kind)");
  const kindName = `${info.family}${VERSION}`;
  const rec = cap as unknown as Record<string, unknown>;
  const fields: Uint8Array[] = [];
  for (const [name, len] of info.fields) {
    const v = rec[name];
    if (!(v instanceof Uint8Array) || v.length !== len) {
      throw new CapError(
        "invalid-cap",
        `cannot format ${kindName} cap: ${name} must be ${len} bytes`,
      );
    }
    fields.push(v);
  }
  let s = `${CAP_PREFIX}${kindName}:${base32Encode(concatBytes(...fields))}`;
  if (info.chk) {
    const c = cap as Extract<Cap, { kind: "immutable-read" }>;
    checkParams(c.k, c.n, c.size, kindName);
    s += `:${c.k}:${c.n}:${c.size}`;
  }
  return s;
}

export function isMutableCap(cap: Cap): boolean {
  return cap.kind.startsWith("mutable-") || cap.kind.startsWith("dir-");
}
export function isDirCap(cap: Cap): boolean {
  return cap.kind.startsWith("dir-");
}
export function isImmutableCap(cap: Cap): boolean {
  return cap.kind.startsWith("immutable-");
}
export function isWriteCap(cap: Cap): boolean {
  return cap.kind.endsWith("-write");
}
export function isReadCap(cap: Cap): boolean {
  return cap.kind.endsWith("-read");
}
export function isVerifyCap(cap: Cap): boolean {
  return cap.kind.endsWith("-verify");
}

/** One step down: write -> read -> verify. CapError for a verify cap. */
export async function diminishCap(cap: Cap): Promise<Cap> {
  switch (cap.kind) {
    case "mutable-write":
    case "dir-write": {
      const readkey = readkeyFromWritekey(writekeyFromSeed(cap.seed));
      const fingerprint = fingerprintFromPublicKey(await publicKeyFromSeed(cap.seed));
      return {
        kind: cap.kind === "dir-write" ? "dir-read" : "mutable-read",
        readkey,
        fingerprint,
      };
    }
    case "mutable-read":
    case "dir-read":
      return {
        kind: cap.kind === "dir-read" ? "dir-verify" : "mutable-verify",
        storageIndex: storageIndexFromFingerprint(cap.fingerprint),
        fingerprint: new Uint8Array(cap.fingerprint),
      };
    case "immutable-read":
      return {
        kind: "immutable-verify",
        storageIndex: immutableStorageIndex(cap.key),
        uebHash: new Uint8Array(cap.uebHash),
        k: cap.k,
        n: cap.n,
        size: cap.size,
      };
    case "mutable-verify":
    case "dir-verify":
    case "immutable-verify":
      throw new CapError("cannot-diminish", "a verify cap cannot be diminished any further");
    default:
      throw new CapError("invalid-cap", "cannot diminish: not a cap (unknown kind)");
  }
}

/** The read cap of a write cap; a read cap itself. CapError for verify caps. */
export async function readcapOf(cap: Cap): Promise<Cap> {
  if (isWriteCap(cap)) return await diminishCap(cap);
  if (isReadCap(cap)) return cap;
  throw new CapError("cannot-diminish", "a verify cap grants no read authority: no readcap");
}

/** The verify cap of any cap (identity for a verify cap). */
export async function verifycapOf(cap: Cap): Promise<Cap> {
  if (isVerifyCap(cap)) return cap;
  return await diminishCap(await readcapOf(cap));
}

/** The 16-byte storage index of the object a cap names (async form of capStorageIndexSync). */
export function capStorageIndex(cap: Cap): Promise<Uint8Array> {
  try {
    return Promise.resolve(capStorageIndexSync(cap));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The 16-byte storage index of the object a cap names; every cap kind derives it offline. */
export function capStorageIndexSync(cap: Cap): Uint8Array {
  switch (cap.kind) {
    case "mutable-write":
    case "dir-write":
      return storageIndexFromPublicKey(publicKeyFromSeedSync(cap.seed));
    case "mutable-read":
    case "dir-read":
      return storageIndexFromFingerprint(cap.fingerprint);
    case "immutable-read":
      return immutableStorageIndex(cap.key);
    case "mutable-verify":
    case "dir-verify":
    case "immutable-verify":
      return new Uint8Array(cap.storageIndex);
    default:
      throw new CapError("invalid-cap", "not a cap (unknown kind)");
  }
}

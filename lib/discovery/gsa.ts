/**
 * Grid service announcements (GSA): the contents of the mutable file each
 * storage server writes about itself. docs/discovery.md §4. Pure: no I/O.
 *
 * CBOR map:
 *   v          1
 *   nickname   text (1..64 characters, no control or format characters)
 *   serverId   bytes(32): the SHA-256 pin of the server's TLS public key
 *   software   text, e.g. "shoal/0.1.0"
 *   announced  integer, seconds since the epoch when this version was written
 *   services   array of maps, each with `type` (text); for type "storage":
 *                storageUrls  array of storage URL texts, each pinned to serverId
 *              services of unknown types are kept but ignored by clients.
 */
import { base32Encode, bytesEqual, decodeCbor, encodeCbor } from "../codec/mod.ts";
import { formatStorageUrl, parseStorageUrl, type StorageUrl } from "../storage/mod.ts";

export const GSA_FORMAT_VERSION = 1;
export const MAX_GSA_BYTES = 64 * 1024;

export class AnnouncementError extends Error {
  override name = "AnnouncementError";
}

export interface StorageService {
  type: "storage";
  storageUrls: StorageUrl[];
}

export interface OtherService {
  type: string;
  [key: string]: unknown;
}

export interface Announcement {
  nickname: string;
  serverId: Uint8Array;
  software: string;
  announced: number;
  /** The storage service, if announced (the only service type Shoal knows today). */
  storage: StorageService | null;
  /** Services of types this version does not know: carried, not used. */
  otherServices: OtherService[];
}

/**
 * Characters a server may not put in any text it announces (docs/discovery.md §4): Unicode
 * control (Cc: C0, DEL, C1) and format (Cf: bidi embeddings, overrides and isolates, zero-width
 * characters, BOM) characters, and the line and paragraph separators (Zl, Zp). Such text reaches
 * terminals and dashboards; none of these has a place in a name.
 */
const FORBIDDEN_TEXT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** Throws AnnouncementError when `text` holds a character FORBIDDEN_TEXT refuses. */
export function validateAnnouncedText(text: string, what: string): string {
  if (FORBIDDEN_TEXT.test(text)) {
    throw new AnnouncementError(`${what} contains a control or format character`);
  }
  return text;
}

export function validateNickname(nickname: string): string {
  if (typeof nickname !== "string" || nickname.length === 0 || nickname.length > 64) {
    throw new AnnouncementError("nickname must be 1 to 64 characters");
  }
  return validateAnnouncedText(nickname, "nickname");
}

function validateSoftware(software: unknown): string {
  if (typeof software !== "string" || software.length > 200) {
    throw new AnnouncementError("announcement software must be text");
  }
  return validateAnnouncedText(software, "software");
}

export function encodeAnnouncement(a: Announcement): Uint8Array {
  validateNickname(a.nickname);
  validateSoftware(a.software);
  for (const o of a.otherServices) validateAnnouncedText(o.type, "service type");
  if (a.serverId.length !== 32) throw new AnnouncementError("serverId must be 32 bytes");
  const services: unknown[] = [...a.otherServices];
  if (a.storage) {
    for (const u of a.storage.storageUrls) {
      if (!bytesEqual(u.pin, a.serverId)) {
        throw new AnnouncementError("a storage URL is pinned to another server");
      }
    }
    services.unshift({ type: "storage", storageUrls: a.storage.storageUrls.map(formatStorageUrl) });
  }
  const bytes = encodeCbor({
    v: GSA_FORMAT_VERSION,
    nickname: a.nickname,
    serverId: a.serverId,
    software: a.software,
    announced: a.announced,
    services,
  });
  if (bytes.length > MAX_GSA_BYTES) {
    throw new AnnouncementError(`announcement exceeds ${MAX_GSA_BYTES} bytes`);
  }
  return bytes;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

/** Decode and validate an announcement; throws AnnouncementError saying what is wrong. */
export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  if (bytes.length > MAX_GSA_BYTES) {
    throw new AnnouncementError(`announcement exceeds ${MAX_GSA_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = decodeCbor(bytes);
  } catch (e) {
    throw new AnnouncementError(`announcement is not valid CBOR: ${(e as Error).message}`);
  }
  if (!isRecord(doc)) throw new AnnouncementError("announcement is not a CBOR map");
  if (doc.v !== GSA_FORMAT_VERSION) {
    throw new AnnouncementError(`unsupported announcement version ${String(doc.v)}`);
  }
  if (typeof doc.nickname !== "string") throw new AnnouncementError("announcement has no nickname");
  validateNickname(doc.nickname);
  if (!(doc.serverId instanceof Uint8Array) || doc.serverId.length !== 32) {
    throw new AnnouncementError("announcement serverId must be 32 bytes");
  }
  validateSoftware(doc.software);
  if (!Number.isSafeInteger(doc.announced)) {
    throw new AnnouncementError("announcement time must be an integer");
  }
  if (!Array.isArray(doc.services) || doc.services.length > 64) {
    throw new AnnouncementError("announcement services must be a list");
  }
  let storage: StorageService | null = null;
  const otherServices: OtherService[] = [];
  for (const s of doc.services) {
    if (!isRecord(s) || typeof s.type !== "string") {
      throw new AnnouncementError("malformed service entry");
    }
    validateAnnouncedText(s.type, "service type");
    if (s.type !== "storage") {
      otherServices.push(s as OtherService);
      continue;
    }
    if (storage) throw new AnnouncementError("announcement lists the storage service twice");
    if (!Array.isArray(s.storageUrls) || s.storageUrls.length === 0 || s.storageUrls.length > 16) {
      throw new AnnouncementError("storage service needs 1 to 16 storage URLs");
    }
    const urls: StorageUrl[] = [];
    for (const t of s.storageUrls) {
      if (typeof t !== "string") throw new AnnouncementError("storage URL must be text");
      let u: StorageUrl;
      try {
        u = parseStorageUrl(t);
      } catch (e) {
        throw new AnnouncementError(`announced storage URL is malformed: ${(e as Error).message}`);
      }
      if (!bytesEqual(u.pin, doc.serverId)) {
        throw new AnnouncementError(
          `announced storage URL is pinned to another server than ${
            base32Encode(doc.serverId).slice(0, 8)
          }`,
        );
      }
      urls.push(u);
    }
    storage = { type: "storage", storageUrls: urls };
  }
  return {
    nickname: doc.nickname,
    serverId: doc.serverId,
    software: doc.software as string,
    announced: doc.announced as number,
    storage,
    otherServices,
  };
}

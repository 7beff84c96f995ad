/**
 * Storage URLs (docs/storage-url.md):
 *
 *   shoal-storage:v1:<pin>:<swissnum>@<hint>[;<hint>...]
 *
 * pin and swissnum are 32 bytes each as 52 characters of lowercase unpadded
 * base32; a hint is `host:port` with host a DNS name, a dotted IPv4 address or
 * a bracketed IPv6 address. Parse errors never quote the swissnum (or any other
 * part of the text that might hold it).
 */
import { isIPv6 } from "node:net";
import { base32Decode, base32Encode, Base32Error, base32Length } from "../codec/mod.ts";
import { PIN_BYTES, SWISSNUM_BYTES } from "./protocol.ts";

export const STORAGE_URL_PREFIX = "shoal-storage:";
export const STORAGE_URL_VERSION = "v1";
/** Most location hints one storage URL may carry. */
export const MAX_LOCATION_HINTS = 16;
/** Longest storage URL text accepted. */
export const MAX_STORAGE_URL_LENGTH = 4096;

export interface StorageUrl {
  /** SHA-256 of the server's TLS SubjectPublicKeyInfo (32 bytes); also the server id. */
  pin: Uint8Array;
  /** The secret that authorizes requests (32 bytes). */
  swissnum: Uint8Array;
  /** Location hints `host:port`, tried in order. */
  locations: string[];
}

export interface LocationHint {
  /** Host without brackets (IPv6 as written inside the brackets). */
  host: string;
  port: number;
  kind: "dns" | "ipv4" | "ipv6";
}

/** A malformed storage URL or location hint. The message never contains a secret. */
export class StorageUrlError extends SyntaxError {
  override name = "StorageUrlError";
}

/** The text form of a server id (the pin): 52 characters of lowercase base32. */
export function serverIdString(pin: Uint8Array): string {
  return base32Encode(pin);
}

const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
const DNS_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const PORT = /^[1-9][0-9]{0,4}$/;

/** Why `host` (without brackets) is not a DNS name or IPv4 address, or null when it is one. */
function hostProblem(host: string): string | null {
  if (host.length === 0) return "the host is empty";
  if (IPV4.test(host)) return null;
  if (host.length > 253) return "the host name is longer than 253 characters";
  const labels = host.split(".");
  for (const l of labels) {
    if (!DNS_LABEL.test(l)) {
      return "the host is neither a DNS name (labels of letters, digits and inner hyphens, " +
        "at most 63 characters each, no trailing dot) nor a dotted IPv4 address";
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1])) {
    return "the host looks like an IPv4 address but is not a valid one (four decimal parts 0-255, " +
      "no leading zeros)";
  }
  return null;
}

/** Parse one `host:port` hint; `where` prefixes error messages. */
export function parseLocationHint(text: string, where = "location hint"): LocationHint {
  let host: string;
  let portText: string;
  let kind: LocationHint["kind"];
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new StorageUrlError(`${where}: "[" without a closing "]"`);
    host = text.slice(1, close);
    if (text[close + 1] !== ":") {
      throw new StorageUrlError(`${where}: expected ":PORT" after the bracketed IPv6 address`);
    }
    portText = text.slice(close + 2);
    if (host.includes("%") || !isIPv6(host)) {
      throw new StorageUrlError(`${where}: the bracketed host is not an IPv6 address`);
    }
    kind = "ipv6";
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new StorageUrlError(`${where}: expected HOST:PORT (the port is missing)`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) {
      throw new StorageUrlError(
        `${where}: an IPv6 address must be written in brackets, [ADDR]:PORT`,
      );
    }
    const problem = hostProblem(host);
    if (problem) throw new StorageUrlError(`${where}: ${problem}`);
    kind = IPV4.test(host) ? "ipv4" : "dns";
  }
  if (portText.length === 0) throw new StorageUrlError(`${where}: the port is empty`);
  const port = Number(portText);
  if (!PORT.test(portText) || port > 65535) {
    throw new StorageUrlError(
      `${where}: the port must be a decimal number 1-65535 without leading zeros`,
    );
  }
  return { host, port, kind };
}

/** `host:port`, with IPv6 hosts in brackets. */
export function formatLocationHint(h: { host: string; port: number }): string {
  return h.host.includes(":") ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

function checkBytes(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new StorageUrlError(`${what} must be ${n} bytes`);
  }
}

/** The text form; throws StorageUrlError if a field is invalid (so parse(format(u)) == u). */
export function formatStorageUrl(u: StorageUrl): string {
  checkBytes("the pin", u.pin, PIN_BYTES);
  checkBytes("the swissnum", u.swissnum, SWISSNUM_BYTES);
  checkLocations(u.locations);
  return `${STORAGE_URL_PREFIX}${STORAGE_URL_VERSION}:${base32Encode(u.pin)}:` +
    `${base32Encode(u.swissnum)}@${u.locations.join(";")}`;
}

function checkLocations(locations: string[]): void {
  if (locations.length === 0) {
    throw new StorageUrlError('a storage URL needs at least one location hint after "@"');
  }
  if (locations.length > MAX_LOCATION_HINTS) {
    throw new StorageUrlError(
      `a storage URL carries at most ${MAX_LOCATION_HINTS} location hints (got ${locations.length})`,
    );
  }
  const seen = new Set<string>();
  locations.forEach((l, i) => {
    const where = `location hint ${i + 1}`;
    if (l.includes(";") || l.includes(",") || l.includes("@")) {
      throw new StorageUrlError(`${where}: contains ";", "," or "@"`);
    }
    parseLocationHint(l, where);
    if (seen.has(l)) throw new StorageUrlError(`${where}: repeats an earlier hint`);
    seen.add(l);
  });
}

function decodeField(what: string, text: string, n: number): Uint8Array {
  const want = base32Length(n);
  if (text.length !== want) {
    throw new StorageUrlError(
      `${what}: expected ${want} base32 characters, found ${text.length}`,
    );
  }
  if (/[A-Z]/.test(text)) {
    throw new StorageUrlError(`${what}: base32 must be lowercase (a-z, 2-7)`);
  }
  try {
    return base32Decode(text);
  } catch (e) {
    // Base32Error messages name positions and reasons, never the text itself.
    const why = e instanceof Base32Error ? e.message : "not valid base32";
    throw new StorageUrlError(`${what}: ${why}`);
  }
}

/** Parse a storage URL. Leading and trailing ASCII whitespace is ignored. */
export function parseStorageUrl(text: string): StorageUrl {
  if (typeof text !== "string") throw new StorageUrlError("a storage URL must be text");
  const t = text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
  if (t.length > MAX_STORAGE_URL_LENGTH) {
    throw new StorageUrlError(
      `a storage URL is at most ${MAX_STORAGE_URL_LENGTH} characters (got ${t.length})`,
    );
  }
  if (!t.startsWith(STORAGE_URL_PREFIX)) {
    throw new StorageUrlError(
      `not a storage URL: it must start with "${STORAGE_URL_PREFIX}${STORAGE_URL_VERSION}:"`,
    );
  }
  const rest = t.slice(STORAGE_URL_PREFIX.length);
  const vEnd = rest.indexOf(":");
  const version = vEnd < 0 ? rest : rest.slice(0, vEnd);
  if (version !== STORAGE_URL_VERSION) {
    const shown = /^v[0-9]{1,6}$/.test(version) ? ` ${version}` : "";
    throw new StorageUrlError(
      `unsupported storage URL version${shown}: this program reads "${STORAGE_URL_VERSION}"`,
    );
  }
  const body = rest.slice(vEnd + 1);
  if (body.includes(",")) {
    throw new StorageUrlError(
      "a storage URL contains no commas (an introduction text separates URLs with commas)",
    );
  }
  if (/\s/.test(body)) throw new StorageUrlError("a storage URL contains no whitespace");
  const at = body.indexOf("@");
  if (at < 0) {
    throw new StorageUrlError(
      'missing "@" and location hints after the swissnum (shoal-storage:v1:PIN:SWISSNUM@HOST:PORT)',
    );
  }
  if (body.indexOf("@", at + 1) >= 0) throw new StorageUrlError('more than one "@"');
  const keys = body.slice(0, at).split(":");
  if (keys.length !== 2) {
    throw new StorageUrlError(
      `expected PIN:SWISSNUM before "@" (two fields separated by ":"), found ${keys.length} field(s)`,
    );
  }
  const pin = decodeField("pin", keys[0], PIN_BYTES);
  const swissnum = decodeField("swissnum", keys[1], SWISSNUM_BYTES);
  const hintText = body.slice(at + 1);
  if (hintText.length === 0) {
    throw new StorageUrlError('a storage URL needs at least one location hint after "@"');
  }
  const locations = hintText.split(";");
  locations.forEach((l, i) => {
    if (l.length === 0) throw new StorageUrlError(`location hint ${i + 1} is empty`);
  });
  checkLocations(locations);
  return { pin, swissnum, locations };
}

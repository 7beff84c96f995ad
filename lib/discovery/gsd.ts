/**
 * The grid service directory (GSD): a directory whose entries `v1.<petname>`
 * link GSA readcaps, with directory metadata `issued` and `expires`.
 * docs/discovery.md §3. Pure: no I/O.
 */
import { base32Decode } from "../codec/mod.ts";
import { type Cap, CapError, parseCap } from "../crypto/mod.ts";
import type { DirEntry } from "../grid/mod.ts";

export const GSD_ENTRY_PREFIX = "v1.";
/** Default validity of a GSD version: 7 days. The operator re-signs when half of it is left. */
export const DEFAULT_GSD_VALIDITY_SECONDS = 7 * 24 * 3600;
/** After expiry, how long a client still trusts the last good GSD for its server list. */
export const DEFAULT_EXPIRY_GRACE_SECONDS = 7 * 24 * 3600;

export class GsdError extends Error {
  override name = "GsdError";
}

const PETNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Petnames: 1..64 of A-Z a-z 0-9 . _ - (starting with a letter or digit). */
export function validatePetname(petname: string): string {
  if (!PETNAME.test(petname)) {
    throw new GsdError(
      "petname must be 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
  }
  return petname;
}

/** Turn a nickname into a petname candidate (invalid characters become '-'). */
export function petnameFromNickname(nickname: string): string {
  const p = nickname.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 64);
  return p.length ? p : "server";
}

export function gsdEntryName(petname: string): string {
  return GSD_ENTRY_PREFIX + validatePetname(petname);
}

export interface GsdMeta {
  /** Seconds since the epoch when this version was signed. */
  issued: number;
  /** Seconds since the epoch after which this version is stale. */
  expires: number;
}

export function gsdMeta(now: number, validity = DEFAULT_GSD_VALIDITY_SECONDS): GsdMeta {
  return { issued: now, expires: now + validity };
}

export function parseGsdMeta(meta: Record<string, unknown>): GsdMeta {
  const { issued, expires } = meta;
  if (
    !Number.isSafeInteger(issued) || !Number.isSafeInteger(expires) ||
    (expires as number) < (issued as number)
  ) {
    throw new GsdError("grid service directory has no valid issued/expires times");
  }
  return { issued: issued as number, expires: expires as number };
}

export interface GsdLink {
  petname: string;
  gsaReadcap: Extract<Cap, { kind: "mutable-read" }>;
  /** The cap text as stored in the GSD. */
  gsaReadcapText: string;
  /**
   * The server this entry was added for (base32 of its pin, from the entry's `serverId`
   * metadata), or null for an entry written without one. A client refuses a GSA behind
   * this entry that claims another server id (docs/discovery.md §3, "Binding").
   */
  serverId: string | null;
}

/** Entry metadata key binding a GSD entry to the server id the operator verified. */
export const GSD_ENTRY_SERVER_ID = "serverId";

/** The bound server id of an entry's metadata: null when absent; throws GsdError when malformed. */
export function entryServerId(metadata: Record<string, unknown>): string | null {
  const v = metadata[GSD_ENTRY_SERVER_ID];
  if (v === undefined) return null;
  let ok = false;
  if (typeof v === "string" && /^[a-z2-7]{52}$/.test(v)) {
    try {
      ok = base32Decode(v).length === 32;
    } catch { /* not base32 */ }
  }
  if (!ok) throw new GsdError("has a malformed serverId (want the base32 of 32 bytes)");
  return v as string;
}

/**
 * The announcement links of a GSD's entries. Entries that are not `v1.`
 * names are skipped (a later format); malformed v1 entries are reported.
 */
export function gsdLinks(entries: DirEntry[]): { links: GsdLink[]; problems: string[] } {
  const links: GsdLink[] = [];
  const problems: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(GSD_ENTRY_PREFIX)) continue;
    const petname = e.name.slice(GSD_ENTRY_PREFIX.length);
    try {
      validatePetname(petname);
      const cap = parseCap(e.readcap);
      if (cap.kind !== "mutable-read") {
        throw new GsdError(`links a ${cap.kind} cap, not a GSA readcap`);
      }
      const serverId = entryServerId(e.metadata ?? {});
      links.push({ petname, gsaReadcap: cap, gsaReadcapText: e.readcap, serverId });
    } catch (err) {
      const why = err instanceof CapError || err instanceof GsdError ? err.message : String(err);
      problems.push(`GSD entry '${e.name}' skipped: ${why}`);
    }
  }
  return { links, problems };
}

export type Freshness = "fresh" | "expired" | "expired-past-grace";

export function gsdFreshness(
  meta: GsdMeta,
  now: number,
  grace = DEFAULT_EXPIRY_GRACE_SECONDS,
): Freshness {
  if (now <= meta.expires) return "fresh";
  return now <= meta.expires + grace ? "expired" : "expired-past-grace";
}

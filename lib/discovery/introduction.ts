/**
 * The introduction text: `<GSD readcap>,<storage URL>[,<storage URL>...]`.
 * Everything a client needs to join a grid. docs/discovery.md §2.
 * Pure: no I/O. Error messages name the part that is wrong, never its text.
 */
import { type Cap, CapError, formatCap, parseCap } from "../crypto/mod.ts";
import {
  formatStorageUrl,
  parseStorageUrl,
  type StorageUrl,
  StorageUrlError,
} from "../storage/mod.ts";

export class IntroductionTextError extends Error {
  override name = "IntroductionTextError";
}

export interface IntroductionText {
  gsdReadcap: Extract<Cap, { kind: "dir-read" }>;
  storageUrls: StorageUrl[];
}

/** Most storage URLs one introduction text may carry. */
export const MAX_INTRODUCTION_URLS = 1000;

export function parseIntroductionText(text: string): IntroductionText {
  if (typeof text !== "string") {
    throw new IntroductionTextError("introduction text must be a string");
  }
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new IntroductionTextError("introduction text is empty");
  if (/\s/.test(trimmed)) {
    throw new IntroductionTextError(
      "introduction text contains whitespace; it is one line: <GSD readcap>,<storage URL>[,...] with no spaces",
    );
  }
  const parts = trimmed.split(",");
  if (parts.length < 2) {
    throw new IntroductionTextError(
      "introduction text needs a GSD readcap and at least one storage URL, separated by commas",
    );
  }
  if (parts.length - 1 > MAX_INTRODUCTION_URLS) {
    throw new IntroductionTextError(
      `introduction text has more than ${MAX_INTRODUCTION_URLS} storage URLs`,
    );
  }
  let cap: Cap;
  try {
    cap = parseCap(parts[0]);
  } catch (e) {
    const why = e instanceof CapError ? e.message : String(e);
    throw new IntroductionTextError(`part 1 (the GSD readcap) is not a valid cap: ${why}`);
  }
  if (cap.kind !== "dir-read") {
    const hint = cap.kind === "dir-write"
      ? " (this is the GSD writecap: never share it; use 'shoal operator get-introduction-text')"
      : "";
    throw new IntroductionTextError(
      `part 1 must be a directory readcap (DIR-R1), not a ${cap.kind} cap${hint}`,
    );
  }
  const storageUrls: StorageUrl[] = [];
  for (let i = 1; i < parts.length; i++) {
    try {
      storageUrls.push(parseStorageUrl(parts[i]));
    } catch (e) {
      const why = e instanceof StorageUrlError ? e.message : String(e);
      throw new IntroductionTextError(
        `part ${i + 1} (storage URL ${i}) is not a valid storage URL: ${why}`,
      );
    }
  }
  return { gsdReadcap: cap, storageUrls };
}

export function formatIntroductionText(intro: IntroductionText): string {
  if (intro.storageUrls.length === 0) {
    throw new IntroductionTextError("an introduction text needs a storage URL");
  }
  return [formatCap(intro.gsdReadcap), ...intro.storageUrls.map(formatStorageUrl)].join(",");
}

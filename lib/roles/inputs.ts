/**
 * Checks of text a person hands to a command (introduction texts, storage URLs), so that a
 * malformed one is an input error (exit code 2) before anything is written, and reading such
 * secrets from a file or stdin rather than the command line (docs/security.md §2.11).
 */
import { parseIntroductionText } from "../discovery/mod.ts";
import { parseStorageUrl } from "../storage/mod.ts";

/** Something wrong in what was given on the command line or read as input: exit code 2. */
export class InputError extends Error {
  override name = "InputError";
}

export function checkIntroductionText(text: string, where = "the introduction text"): void {
  try {
    parseIntroductionText(text);
  } catch (e) {
    throw new InputError(`malformed introduction text (${where}): ${(e as Error).message}`);
  }
}

export function checkStorageUrl(text: string, where: string): void {
  try {
    parseStorageUrl(text);
  } catch (e) {
    throw new InputError(`${where} is not a valid storage URL: ${(e as Error).message}`);
  }
}

/**
 * Read a secret from PATH, or from stdin when PATH is "-": the text, trimmed of surrounding
 * whitespace. Refuses an empty one.
 */
export async function readSecretText(path: string, what: string): Promise<string> {
  let text: string;
  if (path === "-") {
    text = await new Response(Deno.stdin.readable).text();
  } else {
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new InputError(`cannot read ${what} from ${path}: ${(e as Error).message}`);
    }
  }
  text = text.trim();
  if (text === "") {
    throw new InputError(`${path === "-" ? "stdin" : path} holds no ${what}`);
  }
  return text;
}

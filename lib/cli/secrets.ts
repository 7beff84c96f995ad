/**
 * Secrets given to commands without putting them in argv (docs/security.md §2.11): an
 * introduction text from --introducer-v3-file, caps from --cap-file. PATH "-" reads stdin.
 */
import { checkIntroductionText, InputError, readSecretText } from "../roles/inputs.ts";
import { optionalString, type OptionSpec, UsageError, type Values } from "./command.ts";

export const INTRO_OPTIONS: Record<string, OptionSpec> = {
  "introducer-v3": {
    type: "string",
    value: "TEXT",
    help:
      "the grid's introduction text (visible to other local users in 'ps': prefer the file form)",
  },
  "introducer-v3-file": {
    type: "string",
    value: "PATH",
    help: "read the introduction text from PATH ('-': stdin)",
  },
};

/** The introduction text from --introducer-v3 or --introducer-v3-file, checked (exit 2 if bad). */
export async function introductionTextOption(
  values: Values,
  required: boolean,
): Promise<string | undefined> {
  const text = optionalString(values, "introducer-v3");
  const file = optionalString(values, "introducer-v3-file");
  if (text !== undefined && file !== undefined) {
    throw new UsageError("give --introducer-v3 or --introducer-v3-file, not both");
  }
  if (text === undefined && file === undefined) {
    if (required) {
      throw new UsageError(
        "missing the introduction text: give --introducer-v3-file PATH (or '-' for stdin) " +
          "or --introducer-v3 TEXT",
      );
    }
    return undefined;
  }
  const t = file !== undefined ? await readSecretText(file, "introduction text") : text!;
  checkIntroductionText(t, file !== undefined ? file : "--introducer-v3");
  return t;
}

/** The placeholder a positional uses to stand for the cap read by --cap-file. */
export const CAP_PLACEHOLDER = "CAP";

/** Replace CAP and CAP/... positionals with the cap read from --cap-file. */
export async function substituteCapFile(values: Values, positionals: string[]): Promise<string[]> {
  const file = optionalString(values, "cap-file");
  if (file === undefined) return positionals;
  const uses = (p: string) => p === CAP_PLACEHOLDER || p.startsWith(`${CAP_PLACEHOLDER}/`);
  if (!positionals.some(uses)) {
    throw new UsageError(
      `--cap-file was given but no argument is ${CAP_PLACEHOLDER}: write ${CAP_PLACEHOLDER} ` +
        `(or ${CAP_PLACEHOLDER}/path) where the cap goes`,
    );
  }
  const cap = await readSecretText(file, "cap");
  if (/\s/.test(cap)) throw new InputError(`${file === "-" ? "stdin" : file} must hold one cap`);
  return positionals.map((p) => uses(p) ? cap + p.slice(CAP_PLACEHOLDER.length) : p);
}

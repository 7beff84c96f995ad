/** Minimal assertions (JSR's @std/assert is unreachable here). */
export { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

/** Assert that `fn` rejects with an instance of `cls` (and, if given, a message containing `includes`). */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls: abstract new (...args: never[]) => Error = Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof cls)) {
      throw new Error(`expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    if (includes && !e.message.includes(includes)) {
      throw new Error(`expected message containing '${includes}', got '${e.message}'`);
    }
    return e;
  }
  throw new Error(`expected a rejection with ${cls.name}, but it resolved`);
}

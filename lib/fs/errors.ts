/** Errors of the file-system API. `message` is safe to show: it never contains a cap. */
export type FsErrorCode =
  | "not-found" // no entry by that name (or a parent is missing)
  | "exists" // the name is taken and replacing was refused
  | "not-directory" // a path step (or the target) is a file
  | "is-directory" // a file operation named a directory
  | "read-only" // only a readcap is held where a writecap is needed
  | "invalid" // a bad name or a request that makes no sense (e.g. move into itself)
  | "too-large"; // a mutable file beyond its size limit

export class FsError extends Error {
  override name = "FsError";
  /**
   * @param path the path the error is about, when one is (not-found: the missing entry;
   *   not-directory: the file a step reached; read-only: the directory), so a frontend can
   *   word its own message.
   */
  constructor(readonly code: FsErrorCode, message: string, readonly path?: readonly string[]) {
    super(message);
  }
}

const failedPaths = new WeakMap<object, readonly string[]>();

/** Record that `e` (a grid error) was raised while reading the object at `path`. */
export function tagFailedPath(e: unknown, path: readonly string[]): void {
  if (e !== null && typeof e === "object" && !failedPaths.has(e)) failedPaths.set(e, path);
}

/**
 * The path of the directory (or entry) being read when a grid error passed through the API
 * (e.g. an UnrecoverableError while listing `/a/b`), so a frontend can name it; else undefined.
 */
export function failedPath(e: unknown): readonly string[] | undefined {
  return e !== null && typeof e === "object" ? failedPaths.get(e) : undefined;
}

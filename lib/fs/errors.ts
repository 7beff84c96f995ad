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
  constructor(readonly code: FsErrorCode, message: string) {
    super(message);
  }
}

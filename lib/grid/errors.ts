/** Errors the grid layer raises. Messages never contain caps or other secrets. */

export class GridError extends Error {
  override name = "GridError";
}

/** Another writer changed the object while we wrote it (a failed test or a surprise share). */
export class UncoordinatedWriteError extends GridError {
  override name = "UncoordinatedWriteError";
}

/** Too few servers accepted (or hold) shares for the operation to succeed. */
export class NotEnoughServersError extends GridError {
  override name = "NotEnoughServersError";
}

/** No version of the object could be rebuilt from the shares found. */
export class UnrecoverableError extends GridError {
  override name = "UnrecoverableError";
}

/** The newest version found is older than the caller has already seen. */
export class RollbackError extends GridError {
  override name = "RollbackError";
}

/** An upload's source gave other bytes on the encrypting read than on the hashing read. */
export class SourceChangedError extends GridError {
  override name = "SourceChangedError";
}

/**
 * "N server(s) failed: a; b" — listing at most 3, and saying how many more there were so that
 * the counts add up: "5 server(s) failed (the first 3: a; b; c; 2 more)".
 */
export function failedServers(errors: string[]): string {
  const n = errors.length;
  const list = errors.slice(0, 3).join("; ");
  return n > 3
    ? `${n} server(s) failed (the first 3: ${list}; ${n - 3} more)`
    : `${n} server(s) failed: ${list}`;
}

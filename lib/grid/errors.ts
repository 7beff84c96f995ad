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

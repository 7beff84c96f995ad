/**
 * Large transfer buffers kept between transfers. An upload's segment inputs, block outputs and
 * PATCH buffers are megabytes each and were made afresh for every file, so a client storing many
 * files of a few MB (restic's 16 MiB packs through `shoal client serve restic`, a backup of a
 * tree) paid the kernel to fault in and zero new pages for most bytes it sent
 * (docs/performance.md §9.9). Here a buffer a transfer is done with waits, by its exact length,
 * for the next transfer that needs one of that length. A download's block buffers (SegmentPool's
 * spares) come back here when its pool closes.
 *
 * Rules for callers: give back only a buffer nothing else still reads or writes (a PATCH whose
 * server has answered, a segment whose blocks were copied out), and write every byte a transfer
 * uses before reading it: a recycled buffer holds the previous transfer's bytes.
 */

/** At most this many bytes wait here; beyond it the longest-kept buffers are left to the GC. */
const MAX_KEPT = 64 * 1024 * 1024;
/** At most this many buffers of one length wait (an upload's PATCHes in flight must not crowd out the rest). */
const MAX_PER_LENGTH = 24;
/** Only buffers at least this large are worth keeping; smaller ones are cheap to make. */
const MIN_SIZE = 64 * 1024;
/** Everything kept is released after this long without a take or a give (an idle process). */
const IDLE_MS = 10_000;

/** Kept buffers, the most recently given last. */
let shelf: ArrayBuffer[] = [];
let kept = 0;
let lastUse = 0;
let timer: ReturnType<typeof setTimeout> | undefined;

/** A buffer of exactly `bytes` bytes: a kept one (old contents!) or a new zeroed one. */
export function takeBuffer(bytes: number): ArrayBuffer {
  lastUse = Date.now();
  for (let i = shelf.length - 1; i >= 0; i--) {
    const b = shelf[i];
    if (b.byteLength !== bytes) continue;
    shelf.splice(i, 1);
    kept -= bytes;
    return b;
  }
  return new ArrayBuffer(bytes);
}

/**
 * Hand a buffer back for a later transfer (a detached or small one is ignored). Sizes no
 * transfer asks for again (a small file's) age out: the oldest go first when the shelf is full.
 */
export function giveBuffer(b: ArrayBufferLike): void {
  if (!(b instanceof ArrayBuffer)) return;
  const bytes = b.byteLength;
  if (bytes < MIN_SIZE || bytes > MAX_KEPT) return;
  let same = 0;
  for (const x of shelf) if (x.byteLength === bytes) same++;
  if (same >= MAX_PER_LENGTH) return;
  shelf.push(b);
  kept += bytes;
  while (kept > MAX_KEPT) kept -= shelf.shift()!.byteLength;
  lastUse = Date.now();
  arm();
}

function arm(): void {
  if (timer !== undefined) return;
  timer = setTimeout(() => {
    timer = undefined;
    if (Date.now() - lastUse >= IDLE_MS) releaseBuffers();
    else arm();
  }, IDLE_MS);
  Deno.unrefTimer(timer as unknown as number);
}

/** Drop every kept buffer (the idle timer does this; tests call it to start clean). */
export function releaseBuffers(): void {
  shelf = [];
  kept = 0;
}

/** Bytes kept now (tests, metrics). */
export function keptBytes(): number {
  return kept;
}

/** The kept buffers themselves (tests: they fill them with junk to show it never leaks out). */
export function keptBuffers(): readonly ArrayBuffer[] {
  return shelf;
}

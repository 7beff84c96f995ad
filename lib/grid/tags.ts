/** Hash tags used by the grid layer (documented in docs/mutable-files.md and docs/crypto.md). */
export const GRID_TAGS = Object.freeze({
  permutedRing: "shoal:v1:permuted-ring",
  mutableSignature: "shoal:v1:mutable-signature",
  mutableBlock: "shoal:v1:mutable-block",
  mutableShareLeaf: "shoal:v1:mutable-share-leaf",
});
